/** How a JobSpec becomes sbatch options, and which attributes the Slurm backend refuses. */
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { JobSpecSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { jobPaths } from "../../services/jobs/job-dir.js";
import { createSlurmBackend, sbatchHeader } from "../../services/jobs/slurm-backend.js";
import { createLogger } from "../../services/common/logger.js";

const paths = jobPaths("/srv/lclstream/jobs", "abc123");

describe("Slurm options", () => {
  it("maps every resource and the backend's queue, project and reservation", () => {
    const spec = create(JobSpecSchema, {
      name: "peaks; rm -rf /",
      script: "true",
      resources: {
        durationMinutes: 30,
        nodeCount: 2,
        processCount: 8,
        processesPerNode: 4,
        cpuCoresPerProcess: 2,
        gpuCoresPerProcess: 1,
        exclusiveNodeUse: true,
      },
      attributes: { qos: "high", constraint: "cpu" },
    });
    const header = sbatchHeader(
      { id: "abc123", jobndx: 2, spec, paths, inherited: {} },
      { queueName: "milano", projectName: "lcls:mfx101", reservationId: "beamtime" },
    );
    expect(header).toEqual([
      "#SBATCH --job-name=peaks__rm_-rf__-abc123",
      "#SBATCH --output=/srv/lclstream/jobs/abc123/logs/2.stdout",
      "#SBATCH --error=/srv/lclstream/jobs/abc123/logs/2.stderr",
      "#SBATCH --chdir=/srv/lclstream/jobs/abc123",
      "#SBATCH --export=NONE",
      "#SBATCH --time=30",
      "#SBATCH --nodes=2",
      "#SBATCH --ntasks=8",
      "#SBATCH --ntasks-per-node=4",
      "#SBATCH --cpus-per-task=2",
      "#SBATCH --gpus-per-task=1",
      "#SBATCH --partition=milano",
      "#SBATCH --account=lcls:mfx101",
      "#SBATCH --reservation=beamtime",
      "#SBATCH --constraint=cpu",
      "#SBATCH --qos=high",
      "#SBATCH --exclusive",
    ]);
  });

  it("leaves unset resources to Slurm's defaults, and never exports the job queue's environment", () => {
    const spec = create(JobSpecSchema, { script: "true", inheritEnvironment: true });
    const header = sbatchHeader({ id: "abc123", jobndx: 1, spec, paths, inherited: { PATH: "/usr/bin" } }, {});
    expect(header.map((l) => l.split("=")[0])).toEqual(["#SBATCH --job-name", "#SBATCH --output", "#SBATCH --error", "#SBATCH --chdir", "#SBATCH --export"]);
    expect(header).toContain("#SBATCH --export=NONE");
  });

  it("refuses attributes that would change what runs or where output goes", () => {
    const backend = createSlurmBackend({ events: { active() {}, ended() {} }, logger: createLogger("test", "silent") });
    const spec = create(JobSpecSchema, { script: "true", attributes: { wrap: "rm -rf ~", output: "/etc/passwd", qos: "high\n#SBATCH --uid=0", mem: "4G" } });
    expect(backend.check(spec).map((v) => v.field)).toEqual(['spec.attributes["wrap"]', 'spec.attributes["output"]', 'spec.attributes["qos"]']);
  });

  it("takes psik's attributes: the backend's under the job's, `--option` keys, short options as written", () => {
    const spec = create(JobSpecSchema, { script: "true", attributes: { "--qos": "high", mem: "4G" } });
    const header = sbatchHeader(
      { id: "abc123", jobndx: 1, spec, paths, inherited: {} },
      { attributes: { qos: "normal", "--constraint": "cpu", "-b": "packed:rs" } },
    );
    expect(header.slice(5)).toEqual(["#SBATCH -b packed:rs", "#SBATCH --constraint=cpu", "#SBATCH --mem=4G", "#SBATCH --qos=high"]);
    const backend = createSlurmBackend({ events: { active() {}, ended() {} }, logger: createLogger("test", "silent") });
    expect(backend.check(spec)).toEqual([]);
    expect(
      backend.check(create(JobSpecSchema, { script: "true", attributes: { "--output": "/etc/passwd", "-o": "/etc/passwd" } })).map((v) => v.field),
    ).toEqual(['spec.attributes["--output"]', 'spec.attributes["-o"]']);
  });
});
