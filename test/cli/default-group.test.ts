/** Which consumer group `lclstream get` joins when none is named (the Python client's rule too). */
import { describe, expect, it } from "vitest";
import { DeliveryMode } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { defaultGroup } from "../../services/cli/fetch.js";

describe("the default consumer group", () => {
  it("is `default` when the request has it or names none, else its first reliable group", () => {
    expect(defaultGroup([])).toBe("default");
    expect(
      defaultGroup([
        { name: "viewer", mode: DeliveryMode.LATEST_ONLY },
        { name: "default", mode: DeliveryMode.RELIABLE },
      ]),
    ).toBe("default");
    expect(
      defaultGroup([
        { name: "viewer", mode: DeliveryMode.LATEST_ONLY },
        { name: "analysis", mode: DeliveryMode.UNSPECIFIED },
      ]),
    ).toBe("analysis");
    expect(defaultGroup([{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }])).toBe("viewer");
  });
});
