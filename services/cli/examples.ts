/**
 * An Examples section for every command's help, as gh and kubectl give:
 * the commands a user types, by command path. A test checks that every
 * command has some.
 */
import type { Command } from "commander";

const examples: Record<string, string[]> = {
  "": ["lclstream up &", "lclstream get examples/crystallography.yaml --out run1", "lclstream requests list"],
  health: ["lclstream health --url https://127.0.0.1:8443 --cert-dir ~/.lclstream --timeout 2s"],
  ca: ["lclstream ca init --trust-domain lcls.example.org", "lclstream ca list --url https://ca:8443 --cert-dir admin --json"],
  "ca init": ["lclstream ca init --trust-domain lcls.example.org --state-dir /var/lib/lclstream"],
  "ca issue": ["lclstream ca issue --identity service/buffer --dns buffer.lcls.example.org --out certs/buffer --lifetime 7d"],
  "ca serve": ["lclstream ca serve --host 0.0.0.0 --port 8443 --enroll-port 8444 --admin user/operator"],
  "ca token": ["lclstream ca token create --url https://ca:8443 --cert-dir admin --identity user/alice --ttl 1h"],
  "ca token create": [
    "lclstream ca token create --url https://ca:8443 --cert-dir admin --identity user/alice --ttl 1h",
    "lclstream ca token create --url https://ca:8443 --cert-dir admin --identity service/buffer --dns buffer.lcls.example.org",
  ],
  "ca revoke": ["lclstream ca revoke --url https://ca:8443 --cert-dir admin --serial 3f2a... --reason key-compromise"],
  "ca crl": ["lclstream ca crl --url https://ca:8443 --cert-dir ~/.lclstream --out ca.crl"],
  "ca list": ["lclstream ca list --url https://ca:8443 --cert-dir admin --identity user/alice --state active"],
  enroll: ["lclstream enroll --url https://ca:8444 --token TOKEN --out ~/.lclstream"],
  renew: ["lclstream renew --url https://ca:8443 --cert-dir ~/.lclstream"],
  jobs: ["lclstream jobs submit jobspec.yaml", "lclstream jobs list --state active", "lclstream jobs logs jobs/ID -f"],
  "jobs serve": ["lclstream jobs serve --config jobs.yaml --cert-dir certs/jobs --port 8443"],
  "jobs backends": ["lclstream jobs backends"],
  "jobs submit": ["lclstream jobs submit jobspec.yaml", "cat jobspec.json | lclstream jobs submit -"],
  "jobs list": ["lclstream jobs list --state active", "lclstream jobs list --json"],
  "jobs get": ["lclstream jobs get jobs/ID"],
  "jobs watch": ["lclstream jobs watch jobs/ID && echo done"],
  "jobs logs": ["lclstream jobs logs jobs/ID -f", "lclstream jobs logs jobs/ID --run 2 --stream stderr"],
  "jobs start": ["lclstream jobs start jobs/ID"],
  "jobs reached": ['lclstream jobs reached active "started on $(hostname)"'],
  "jobs cancel": ["lclstream jobs cancel jobs/ID"],
  buffer: ["lclstream buffer streams", "lclstream buffer stat streams/ID", "lclstream buffer tail streams/ID --group viewer"],
  "buffer serve": ["lclstream buffer serve --cert-dir certs/buffer --port 8443 --submitter service/request"],
  "buffer streams": ["lclstream buffer streams", "lclstream buffer streams --json"],
  "buffer stat": ["lclstream buffer stat streams/ID", "lclstream buffer stat streams/ID --json"],
  "buffer tail": ["lclstream buffer tail streams/ID --group viewer", "lclstream buffer tail streams/ID --start-seq 100"],
  config: ["lclstream config check lclstreamer.yaml"],
  "config check": ["lclstream config check lclstreamer.yaml", "lclstream config check lclstreamer.yaml --json"],
  producer: ["lclstream producer serve --cert-dir certs/producer --data-root /sdf/data"],
  "producer serve": ["lclstream producer serve --cert-dir certs/producer --data-root /sdf/data --port 8443"],
  produce: ["lclstream produce --config lclstreamer.yaml", "LCLSTREAM_RANK=1 LCLSTREAM_RANK_COUNT=4 lclstream produce --config lclstreamer.yaml"],
  up: ["lclstream up", "lclstream up --buffers 3 --grant user/alice:xpp1234"],
  get: [
    "lclstream get examples/crystallography.yaml --out run1 --format hdf5",
    "lclstream get --resume ID --out run1",
    "lclstream get lclstreamer.yaml --cancel-on-exit",
  ],
  requests: ["lclstream requests list", "lclstream requests watch ID", "lclstream requests cancel ID"],
  "requests serve": ["lclstream requests serve --cert-dir certs/request --buffer-url https://buffer:8443 --jobs-url https://jobs:8443"],
  "requests list": ["lclstream requests list", "lclstream requests list --json"],
  "requests get": ["lclstream requests get ID"],
  "requests watch": ["lclstream requests watch ID"],
  "requests cancel": ["lclstream requests cancel ID"],
  view: ["lclstream view"],
  "sample-data": ["lclstream sample-data cxi"],
  "sample-data cxi": ["lclstream sample-data cxi --files 4 --events 16 --geometry jungfrau1M"],
  demo: ["lclstream demo"],
};

/** The examples of a command, by its path without the program's name ("" for the program). */
export function examplesOf(path: string): string[] | undefined {
  return examples[path];
}

/** Adds each command's examples to its help, the program's and every subcommand's. */
export function addExamples(program: Command): void {
  const visit = (c: Command, path: string) => {
    const lines = examples[path];
    if (lines) c.addHelpText("after", `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
    for (const sub of c.commands) visit(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  visit(program, "");
}
