/**
 * psana geometry files (the `geometry` calibration type, e.g.
 * `calib/<group>/<source>/geometry/0-end.data`), read as psana reads them:
 * a tree of objects, each placed in its parent's frame by an offset in
 * micrometres and rotations about Z, Y and X (design angle plus tilt), with
 * sensor segments as leaves. Each pixel of the raw frame (segments in file
 * order x rows x columns) gets the image row and column psana's
 * `GeometryAccess.get_pixel_coord_indexes()` gives it, so the viewer draws
 * a frame exactly as `det.raw.image()` assembles it.
 */

/** One line of a geometry file: an object and where it sits in its parent. */
export interface GeometryObject {
  parent: string;
  parentIndex: number;
  name: string;
  index: number;
  /** Offset of the object's origin in its parent's frame, micrometres. */
  x0: number;
  y0: number;
  z0: number;
  /** Rotation about the parent's Z, Y and X axes, degrees: design angle plus tilt. */
  rotZ: number;
  rotY: number;
  rotX: number;
}

/** A segment type: its pixel grid and each pixel's centre in the segment's own frame, micrometres. */
interface SegmentType {
  rows: number;
  columns: number;
  /** The pixel size images are drawn at. */
  scaleUm: number;
  /** Centre of pixel (row, column). */
  x(row: number, column: number): number;
  y(row: number, column: number): number;
}

const range = (n: number, f: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => f(i));

/** Jungfrau module (JUNGFRAU:V2): 2 x 4 ASICs of 256 x 256 pixels of 75 um, double-width pixels at ASIC edges drawn at their centres. */
function jungfrauV2(): SegmentType {
  const pitch = 75;
  const asicStartColumn = [-514.5, -256.5, 1.5, 259.5];
  const xs = range(1024, (c) => (asicStartColumn[c >> 8]! + (c & 255)) * pitch);
  const ys = range(512, (r) => ((r >> 8 ? 1.5 : -256.5) + (r & 255)) * pitch);
  for (const c of [255, 511, 767]) [xs[c], xs[c + 1]] = [xs[c]! + pitch / 2, xs[c + 1]! - pitch / 2];
  [ys[255], ys[256]] = [ys[255]! + pitch / 2, ys[256]! - pitch / 2];
  return { rows: 512, columns: 1024, scaleUm: pitch, x: (_r, c) => xs[c]!, y: (r) => ys[r]! };
}

/** ePix10ka 2 x 2 ASIC panel (EPIX10KA:V1): 352 x 384 pixels of 100 um, 225 um pixels at the ASIC boundaries; +y opposite to rows. */
function epix10kaV1(): SegmentType {
  const [pitch, wide] = [100, 225];
  const half = (n: number) => range(n, (i) => i * pitch + wide - pitch / 2);
  const xr = half(192);
  const yr = half(176);
  const xs = Float64Array.from([...[...xr].reverse().map((v) => -v), ...xr]);
  const ys = Float64Array.from([...[...yr].reverse(), ...[...yr].map((v) => -v)]);
  return { rows: 352, columns: 384, scaleUm: pitch, x: (_r, c) => xs[c]!, y: (r) => ys[r]! };
}

/** A plain matrix sensor, MTRX:V2:rows:cols:row_um:col_um: centred, x along columns, +y opposite to rows. */
function matrixV2(rows: number, columns: number, rowUm: number, columnUm: number): SegmentType {
  return {
    rows,
    columns,
    scaleUm: Math.min(rowUm, columnUm),
    x: (_r, c) => (c - (columns - 1) / 2) * columnUm,
    y: (r) => (r - (rows - 1) / 2) * -rowUm,
  };
}

/** The older matrix sensor, MTRX:rows:cols:row_um:col_um: origin at pixel (0, 0), x along rows, y along columns. */
function matrixV1(rows: number, columns: number, rowUm: number, columnUm: number): SegmentType {
  return { rows, columns, scaleUm: Math.min(rowUm, columnUm), x: (r) => r * rowUm, y: (_r, c) => c * columnUm };
}

/** The segment types this reader knows, by the names geometry files give them. */
export const SEGMENT_TYPES = ["JUNGFRAU:V2", "EPIX10KA:V1", "PNCCD:V1", "MTRX:V2:<rows>:<cols>:<row_um>:<col_um>", "MTRX:<rows>:<cols>:<row_um>:<col_um>"];

function segmentType(name: string): SegmentType | undefined {
  if (name === "JUNGFRAU:V2") return jungfrauV2();
  if (name === "EPIX10KA:V1") return epix10kaV1();
  if (name === "PNCCD:V1") return matrixV1(512, 512, 75, 75);
  const matrix = /^MTRX:(V2:)?(\d+):(\d+):([\d.]+):([\d.]+)$/.exec(name);
  if (!matrix) return undefined;
  const [rows, columns, rowUm, columnUm] = matrix.slice(2).map(Number) as [number, number, number, number];
  return matrix[1] ? matrixV2(rows, columns, rowUm, columnUm) : matrixV1(rows, columns, rowUm, columnUm);
}

/** Reads a geometry file's text: one object a line, `#` comments; a malformed line is an error naming it. */
export function parseGeometry(text: string): GeometryObject[] {
  const objects: GeometryObject[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const words = line.trim().split(/\s+/);
    if (!words[0] || words[0].startsWith("#")) return;
    const numbers = words.slice(4).map(Number);
    if (words.length !== 13 || numbers.some(Number.isNaN) || !/^\d+$/.test(words[1]!) || !/^\d+$/.test(words[3]!)) {
      throw new Error(`geometry line ${i + 1}: expected PARENT IND OBJECT IND X0 Y0 Z0 ROT-Z ROT-Y ROT-X TILT-Z TILT-Y TILT-X, got "${line.trim()}"`);
    }
    const [x0, y0, z0, rotZ, rotY, rotX, tiltZ, tiltY, tiltX] = numbers as [number, number, number, number, number, number, number, number, number];
    objects.push({
      parent: words[0],
      parentIndex: Number(words[1]),
      name: words[2]!,
      index: Number(words[3]),
      x0,
      y0,
      z0,
      rotZ: rotZ + tiltZ,
      rotY: rotY + tiltY,
      rotX: rotX + tiltX,
    });
  });
  if (!objects.length) throw new Error("geometry: no objects (is this a psana geometry file?)");
  return objects;
}

/**
 * Moves points from an object's frame to its parent's, in place: rotate
 * about Z, then Y, then X, then offset. The arithmetic is psana's, in its
 * order, so that pixels on a boundary round to the same image pixel.
 */
function toParent(o: GeometryObject, xs: Float64Array, ys: Float64Array, zs: Float64Array) {
  const [cz, sz, cy, sy, cx, sx] = [o.rotZ, o.rotY, o.rotX].flatMap((deg) => [Math.cos(deg * (Math.PI / 180)), Math.sin(deg * (Math.PI / 180))]) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    const y = ys[i]!;
    const z = zs[i]!;
    const x1 = x * cz - y * sz;
    const y1 = y * cz + x * sz;
    const z2 = z * cy - x1 * sy;
    const x2 = x1 * cy + z * sy;
    const y3 = y1 * cx - z2 * sx;
    const z3 = z2 * cx + y1 * sx;
    xs[i] = x2 + o.x0;
    ys[i] = y3 + o.y0;
    zs[i] = z3 + o.z0;
  }
}

/** Where each raw pixel lands in the assembled image. */
export interface PixelPlacement {
  /** Segments, each `rows` x `columns`, in the frame's order. */
  segments: number;
  rows: number;
  columns: number;
  /** Image row and column of raw pixel i (segment-major, then row, then column). */
  imageRow: Uint32Array;
  imageColumn: Uint32Array;
  /** The assembled image's size. */
  height: number;
  width: number;
}

/**
 * Places every pixel of a geometry's segments: the top object's children
 * in index order, depth first, give the segments' order in the raw frame.
 * Image rows follow x and columns follow y, in pixels of the first
 * segment's size, from the smallest coordinate less half a pixel, as psana's
 * image frame does.
 */
export function placePixels(objects: GeometryObject[]): PixelPlacement {
  const key = (name: string, index: number) => `${name}#${index}`;
  const children = new Map<string, GeometryObject[]>();
  for (const o of objects) {
    const list = children.get(key(o.parent, o.parentIndex)) ?? [];
    list.push(o);
    children.set(key(o.parent, o.parentIndex), list);
  }
  for (const list of children.values()) list.sort((a, b) => a.index - b.index);
  const isChild = new Set(objects.map((o) => key(o.name, o.index)));
  const tops = objects.filter((o) => !isChild.has(key(o.parent, o.parentIndex)));
  const topKeys = new Set(tops.map((o) => key(o.parent, o.parentIndex)));
  if (topKeys.size !== 1) throw new Error(`geometry: expected one top object, found ${topKeys.size} (${[...topKeys].join(", ")})`);

  const segments: { type: SegmentType; path: GeometryObject[] }[] = [];
  const visit = (o: GeometryObject, above: GeometryObject[]) => {
    const path = [o, ...above];
    const inside = children.get(key(o.name, o.index));
    if (inside) return inside.forEach((child) => visit(child, path));
    const type = segmentType(o.name);
    if (!type) throw new Error(`geometry: segment type ${o.name} is not supported here (known: ${SEGMENT_TYPES.join(", ")})`);
    segments.push({ type, path });
  };
  for (const top of children.get([...topKeys][0]!)!) visit(top, []);
  const first = segments[0]!.type;
  if (segments.some((s) => s.type.rows !== first.rows || s.type.columns !== first.columns)) {
    throw new Error("geometry: segments of different sizes are not supported here");
  }

  const perSegment = first.rows * first.columns;
  const xs = new Float64Array(segments.length * perSegment);
  const ys = new Float64Array(segments.length * perSegment);
  segments.forEach(({ type, path }, s) => {
    const [x, y, z] = [xs.subarray(s * perSegment, (s + 1) * perSegment), ys.subarray(s * perSegment, (s + 1) * perSegment), new Float64Array(perSegment)];
    for (let r = 0; r < type.rows; r++) {
      for (let c = 0; c < type.columns; c++) {
        x[r * type.columns + c] = type.x(r, c);
        y[r * type.columns + c] = type.y(r, c);
      }
    }
    for (const o of path) toParent(o, x, y, z);
  });
  const pixel = first.scaleUm;
  let [xmin, ymin] = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
  for (let i = 0; i < xs.length; i++) {
    if (xs[i]! < xmin) xmin = xs[i]!;
    if (ys[i]! < ymin) ymin = ys[i]!;
  }
  [xmin, ymin] = [xmin - pixel / 2, ymin - pixel / 2];
  const imageRow = new Uint32Array(xs.length);
  const imageColumn = new Uint32Array(xs.length);
  let [height, width] = [0, 0];
  for (let i = 0; i < xs.length; i++) {
    imageRow[i] = Math.floor((xs[i]! - xmin) / pixel);
    imageColumn[i] = Math.floor((ys[i]! - ymin) / pixel);
    height = Math.max(height, imageRow[i]! + 1);
    width = Math.max(width, imageColumn[i]! + 1);
  }
  return {
    segments: segments.length,
    rows: first.rows,
    columns: first.columns,
    imageRow,
    imageColumn,
    height,
    width,
  };
}
