/**
 * The viewer's run panels: what it gathers from the batches it sees
 * (accumulate.ts), drawn once a second so that they never slow the live
 * frame. Crystallography: hit rate over time, virtual powder pattern,
 * peakogram. Time of flight: hit-time histogram, hits per event. And each
 * consumer group's lag over time.
 */
import uPlot from "uplot";
import type { EventBatch, Array as ArrayMessage } from "../../gen/lclstream/data/v1/data_pb.js";
import { type Column, HitRate, Histogram, Peakogram, peaksOf, Powder } from "./accumulate.js";
import { panelLayout } from "./detector.js";
import { drawHeatmap, valuesOf } from "./render.js";
import type { TimeAxis } from "./time-axis.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** A uPlot in `id`'s element with one x axis (`x` label) and the series named. */
function plot(
  id: string,
  x: { label: string; time?: boolean },
  series: { label: string; stroke: string }[],
  opts: { bars?: boolean; yMax?: number } = {},
): uPlot {
  const bars = !!opts.bars;
  return new uPlot(
    {
      width: 600,
      height: 180,
      scales: {
        // Over time: the last five minutes, whatever the points (one point alone made uPlot span years).
        x: x.time ? { time: true, range: (_u, _lo, hi) => [(hi ?? Date.now() / 1000) - 300, hi ?? Date.now() / 1000] } : { time: false },
        y: opts.yMax ? { range: [0, opts.yMax] } : {},
      },
      series: [
        { label: x.label },
        ...series.map((s) => ({
          ...s,
          width: 2,
          fill: bars ? `${s.stroke}88` : undefined,
          paths: bars ? uPlot.paths.bars!({ size: [0.9, Number.POSITIVE_INFINITY] }) : undefined,
        })),
      ],
      axes: [
        { stroke: "#aaa", grid: { stroke: "#8883" }, label: x.time ? undefined : x.label },
        { stroke: "#aaa", grid: { stroke: "#8883" }, label: series.length === 1 ? series[0]!.label : undefined },
      ],
    },
    [[], ...series.map(() => [])],
    $(id),
  );
}

/** A columnar field as a Column (values per event), or undefined when missing or not drawable. */
function columnOf(fields: { [name: string]: ArrayMessage }, name: string): Column | undefined {
  const a = fields[name];
  if (!a) return undefined;
  const events = Number(a.shape[0] ?? 0);
  const values = events ? valuesOf(a) : undefined;
  return values && { values, events, per: values.length / events };
}

export class RunPanels {
  #hitRate = new HitRate();
  #powder: Powder | undefined;
  #peakogram: Peakogram | undefined;
  #shape = "";
  #hitTimes: Histogram | undefined;
  #hitTimeAxis: TimeAxis | undefined;
  #hitsPerEvent = new Histogram(65, 65);
  #plots: { hitRate: uPlot; hitTimes: uPlot; hitsPerEvent: uPlot };
  #lag: uPlot | undefined;
  #lagGroups = "";
  #lagData: number[][] = [[]];
  #changed = false;

  constructor() {
    this.#plots = {
      hitRate: plot("hit-rate", { label: "time", time: true }, [{ label: "hit rate (%)", stroke: "#34c759" }], { yMax: 100 }),
      hitTimes: plot("hit-times", { label: "hit time" }, [{ label: "hits", stroke: "#ff3b30" }], { bars: true }),
      hitsPerEvent: plot("hits-per-event", { label: "hits in an event" }, [{ label: "events", stroke: "#5ac8fa" }], { bars: true }),
    };
    setInterval(() => this.#draw(), 1000);
  }

  /** Forgets the run (another request was chosen). */
  reset(): void {
    this.#hitRate = new HitRate();
    this.#powder = this.#peakogram = this.#hitTimes = this.#hitTimeAxis = undefined;
    this.#shape = "";
    this.#hitsPerEvent = new Histogram(65, 65);
    this.#lagGroups = "";
    this.#lagData = [[]];
    this.#lag?.destroy();
    this.#lag = undefined;
    for (const id of ["crystallography", "time-of-flight"]) $(id).hidden = true;
    this.#changed = true;
  }

  /** Adds every event of a batch; hit times go on the waveform's time axis in ns where `timeAxisOf` knows it. */
  add(batch: EventBatch, nowSeconds: number, timeAxisOf?: (name: string, fields: { [name: string]: ArrayMessage }) => TimeAxis | undefined): void {
    if (batch.payload.case !== "columns") return;
    const fields = batch.payload.value.fields;
    for (const name of Object.keys(fields)) {
      const peaks = columnOf(fields, `${name}_peaks`);
      const hit = columnOf(fields, `${name}_hit`);
      if (peaks && hit) {
        const shape = fields[name]!.shape.slice(1).map(Number);
        const key = shape.join("x");
        if (key !== this.#shape) {
          const layout = panelLayout(shape);
          [this.#shape, this.#powder, this.#peakogram] = [key, new Powder(layout), new Peakogram(layout)];
        }
        this.#hitRate.add(hit, nowSeconds);
        for (const p of peaksOf(peaks, this.#powder!.layout, shape.at(-2) ?? 1, shape.length >= 3)) {
          this.#powder!.add(p);
          this.#peakogram!.add(p);
        }
        $("crystallography").hidden = false;
        this.#changed = true;
      }
      const hits = columnOf(fields, `${name}_hits`);
      const counts = columnOf(fields, `${name}_nhits`);
      if (hits && counts) {
        this.#hitTimes ??= new Histogram(Number(fields[name]!.shape.at(-1) ?? 1), 128);
        this.#hitTimeAxis = timeAxisOf?.(name, fields);
        for (let i = 0; i < hits.values.length; i++) this.#hitTimes.add(Number(hits.values[i]));
        for (let e = 0; e < counts.events; e++) {
          let n = 0;
          for (let c = 0; c < counts.per; c++) n += Number(counts.values[e * counts.per + c]);
          this.#hitsPerEvent.add(n);
        }
        $("time-of-flight").hidden = false;
        this.#changed = true;
      }
    }
  }

  /** Each group's lag now (from the request's metrics). */
  lag(groups: { group: string; lagBatches: bigint }[], nowSeconds: number): void {
    const names = groups.map((g) => g.group).join(",");
    if (names !== this.#lagGroups) {
      this.#lag?.destroy();
      this.#lagGroups = names;
      this.#lagData = [[], ...groups.map(() => [])];
      const colours = ["#5ac8fa", "#ffcc00", "#34c759", "#ff9500", "#af52de"];
      this.#lag = new uPlot(
        {
          width: 600,
          height: 160,
          scales: { x: { time: true, range: (_u, _lo, hi) => [(hi ?? nowSeconds) - 120, hi ?? nowSeconds] } },
          series: [{}, ...groups.map((g, i) => ({ label: g.group, stroke: colours[i % colours.length]!, width: 2 }))],
          axes: [
            { stroke: "#aaa", grid: { stroke: "#8883" } },
            { stroke: "#aaa", grid: { stroke: "#8883" }, label: "lag (batches)" },
          ],
        },
        this.#lagData as uPlot.AlignedData,
        $("lag"),
      );
    }
    this.#lagData[0]!.push(nowSeconds);
    groups.forEach((g, i) => this.#lagData[i + 1]!.push(Number(g.lagBatches)));
    const keep = this.#lagData[0]!.findIndex((t) => t > nowSeconds - 120);
    if (keep > 0) this.#lagData = this.#lagData.map((a) => a.slice(keep));
    this.#lag?.setData(this.#lagData as uPlot.AlignedData);
  }

  #draw(): void {
    if (!this.#changed) return;
    this.#changed = false;
    const now = Date.now() / 1000;
    this.#plots.hitRate.setData(this.#hitRate.series(now - 300) as uPlot.AlignedData);
    if (this.#powder) {
      drawHeatmap($<HTMLCanvasElement>("powder"), this.#powder.counts, this.#powder.width, this.#powder.height);
      $("powder").dataset.peaks = String(this.#powder.counts.reduce((a, b) => a + b, 0));
    }
    if (this.#peakogram) drawHeatmap($<HTMLCanvasElement>("peakogram"), this.#peakogram.counts, this.#peakogram.radiusBins, this.#peakogram.intensityBins);
    if (this.#hitTimes) {
      // Counted in samples; drawn in ns when the waveform's sample period is known.
      const [samples, counts] = this.#hitTimes.series();
      const axis = this.#hitTimeAxis;
      this.#plots.hitTimes.axes[0]!.label = axis ? "hit time (ns)" : "hit time (sample)";
      $("hit-times").dataset.unit = axis ? "ns" : "sample";
      this.#plots.hitTimes.setData([axis ? samples.map((s) => axis.startNs + s * axis.stepNs) : samples, counts]);
    }
    const [x, y] = this.#hitsPerEvent.series();
    const last = y.findLastIndex((n) => n > 0);
    this.#plots.hitsPerEvent.setData([x.slice(0, last + 2), y.slice(0, last + 2)] as uPlot.AlignedData);
  }
}
