/** The request store's count by state, which the request service's metrics read at each scrape. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DataRequestSchema, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { RequestStore } from "../../services/request/request-store.js";

describe("the request store", () => {
  it("counts the requests in each state, following their changes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-store-"));
    const store = new RequestStore(join(dir, "requests.db"));
    try {
      const request = (state: State) => create(DataRequestSchema, { owner: "spiffe://t/user/a", state });
      store.insert("a", request(State.RUNNING));
      store.insert("b", request(State.RUNNING));
      store.insert("c", request(State.SUCCEEDED));
      expect(store.countByState()).toEqual(
        new Map([
          [State.RUNNING, 2],
          [State.SUCCEEDED, 1],
        ]),
      );
      store.save("b", request(State.FAILED));
      expect(store.countByState().get(State.RUNNING)).toBe(1);
      expect(store.countByState().get(State.FAILED)).toBe(1);
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
