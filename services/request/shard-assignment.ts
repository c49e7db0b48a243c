/**
 * Assigned mode (SHARD_ASSIGNMENT_ASSIGNED): a consumer group's consumers
 * divide a sharded request's shards between them, as Kafka's consumer groups
 * divide a topic's partitions. Members are kept in the order they joined; at
 * every join and leave the group rebalances: member j of k reads the shards
 * i with i % k == j, and every member is told its new share.
 */

/** A member's share of the shards, as WatchShardAssignment sends it. */
export interface Assignment {
  memberId: string;
  generation: bigint;
  shards: number[];
  memberCount: number;
  /** Every shard has delivered its end of stream to the group (the last message). */
  complete?: boolean;
}

class AssignedGroup {
  generation = 0n;
  readonly members = new Map<string, (a: Assignment) => void>();

  constructor(readonly shardCount: number) {}

  assignment(memberId: string): Assignment {
    const ids = [...this.members.keys()];
    const j = ids.indexOf(memberId);
    const shards = Array.from({ length: this.shardCount }, (_, i) => i).filter((i) => i % ids.length === j);
    return { memberId, generation: this.generation, shards, memberCount: ids.length };
  }

  rebalance() {
    this.generation++;
    for (const [id, tell] of this.members) tell(this.assignment(id));
  }
}

/** The assigned-mode groups of every request, by request and group name. */
export class ShardAssigner {
  readonly #groups = new Map<string, AssignedGroup>();
  #nextId = 0;

  /**
   * Adds a consumer to the group `key` of `shardCount` shards; `tell` gets its
   * share now and after every rebalance. Returns its member id.
   */
  join(key: string, shardCount: number, tell: (a: Assignment) => void): string {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = new AssignedGroup(shardCount)));
    const id = `m${++this.#nextId}`;
    group.members.set(id, tell);
    group.rebalance();
    return id;
  }

  /** Removes a consumer; the others get its shards. */
  leave(key: string, memberId: string): void {
    const group = this.#groups.get(key);
    if (!group?.members.delete(memberId)) return;
    if (group.members.size) group.rebalance();
    else this.#groups.delete(key);
  }

  /** A member's share now. */
  current(key: string, memberId: string): Assignment | undefined {
    const group = this.#groups.get(key);
    return group?.members.has(memberId) ? group.assignment(memberId) : undefined;
  }
}
