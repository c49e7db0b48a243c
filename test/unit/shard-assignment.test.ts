/** ShardAssigner (services/request/shard-assignment.ts): who reads which shard as consumers come and go. */
import { describe, expect, it } from "vitest";
import { type Assignment, ShardAssigner } from "../../services/request/shard-assignment.js";

describe("ShardAssigner", () => {
  it("rebalances a group's shards at every join and leave, telling every member its share", () => {
    const assigner = new ShardAssigner();
    const told: Record<string, Assignment[]> = { a: [], b: [], c: [] };
    const a = assigner.join("r1/workers", 3, (x) => told.a!.push(x));
    expect(told.a!.at(-1)).toMatchObject({ memberId: a, shards: [0, 1, 2], memberCount: 1, generation: 1n });
    const b = assigner.join("r1/workers", 3, (x) => told.b!.push(x));
    expect([told.a!.at(-1)!.shards, told.b!.at(-1)!.shards]).toEqual([[0, 2], [1]]);
    // More members than shards: the last has none.
    assigner.join("r1/workers", 2 /* ignored: the group has 3 */, (x) => told.c!.push(x));
    expect([told.a!.at(-1)!.shards, told.b!.at(-1)!.shards, told.c!.at(-1)!.shards]).toEqual([[0], [1], [2]]);
    assigner.leave("r1/workers", a);
    expect(told.a).toHaveLength(3);
    expect([told.b!.at(-1)!.shards, told.c!.at(-1)!.shards]).toEqual([[0, 2], [1]]);
    expect(told.b!.at(-1)!.generation).toBe(4n);
    // Another group of the same request is its own.
    const other: Assignment[] = [];
    assigner.join("r1/archive", 3, (x) => other.push(x));
    expect(other.at(-1)).toMatchObject({ shards: [0, 1, 2], memberCount: 1 });
    assigner.leave("r1/workers", b);
    expect(assigner.current("r1/workers", b)).toBeUndefined();
  });
});
