// Package bus dispatches Pyrite events to handlers, in process and from Kafka.
//
// A Bus is the seed design's EventBus: handlers subscribe to event-type patterns ("*",
// an exact type, or segment wildcards such as "WorkEffort:*" and "*:Updated") with a
// priority, an async flag and in-process retries; Publish runs the middleware pipeline
// (which may change or drop the event) and then every matching handler.
//
// A Runner is a Kafka consumer group that decodes records into Events and feeds them to a
// Bus (reactors, sagas) or to a per-partition BatchHandler (projections).
//
// Guarantees:
//   - Bus: handlers of one Publish run in priority order (higher first, then in subscription
//     order); a failing or panicking handler does not stop the others. Retries use capped
//     exponential backoff and stop when the context ends. A Bus is safe for concurrent use;
//     On, Off and Use take effect for Publish calls that start afterwards.
//   - Runner: one worker per assigned partition, so per-partition (and so per-aggregate)
//     order holds from the topic to the handlers. A record's offset is marked for commit only
//     after its handlers returned and any retry, queue or dead-letter record it caused was
//     written (synchronously); marked offsets are committed periodically, on revoke (after
//     the revoked partitions' workers stopped) and before Run returns. Delivery is at least
//     once: after a crash or a lost partition, records after the last commit are delivered
//     again.
//   - Routing before decoding: a Bus runner reads a source record's ce_type header first and
//     does not decode a record whose type no handler matches (when the bus has no middleware
//     and keeps no debug log); such a record is marked and counted as published, and so is
//     not dead-lettered by this group even if it could not be decoded.
//   - Per-key order through retries: a source record whose handlers fail transiently parks
//     its key (when the runner has a RetryTopic): it is delivered again after a capped,
//     doubling delay to the failing handlers only, and the later records of the same key wait
//     behind it, in order, while other keys of the partition go on. When it succeeds the
//     waiting records follow at once. Parked records are not committed (the committed offset
//     stays below the lowest one), so a crash or revoke delivers them again; at most
//     MaxParkedPerKey records wait per key, past which the whole partition waits for the
//     retry. pyrite_runner_parked_keys and pyrite_runner_parked_records show them.
//   - A permanent failure, or the last allowed attempt, goes to the group's dead-letter topic
//     with the original key, value and headers plus headers that say why, how often and where
//     from. Nothing is dropped silently.
//   - Per-key order through dead letters (a Bus runner with a RetryTopic, keyed records): a
//     dead letter holds its key for the handlers that failed (for every handler when the
//     failure was no handler's: decode, rejected), as Axon's sequenced dead-letter queue does.
//     Later records of the key are not delivered to those handlers: each is dead-lettered
//     for them, in order, with reason parked (HeaderDLQHoldsKey "true" on every holding dead
//     letter), while the group's other handlers and the other keys go on. Nothing waits in
//     memory but the set of held keys (per key and handler, a count of pending dead
//     letters). A worker rebuilds its partition's set from the DLQ when it starts (pending:
//     no redrive or skip marker). pyrite dlq redrive sends a key's dead letters, in order,
//     to the retry topic; each releases its hold once its delivery there is done (handled,
//     or dead-lettered again, which holds the key anew), so the key's new records cannot
//     overtake them. A redriven record that fails transiently parks its key on the retry
//     partition like a source record, so the key's next redriven records wait for it.
//     pyrite dlq skip writes a release record (HeaderRetryRelease) to the retry topic. The
//     key is free when none of its dead letters is pending. At most MaxDeadKeys keys
//     (default 100000) are held per runner; past that a new key's dead letter does not hold
//     it (its later records go on) and pyrite_runner_dead_keys_overflow_total counts it.
//     pyrite_runner_dead_keys shows the held keys per partition. A worker reads the whole
//     DLQ when its partition is assigned.
//   - The retry topic carries async handlers' queued deliveries and redriven dead letters
//     (pyrite dlq redrive): records in it are delivered to the handlers they name, after their
//     not-before time, by the group that owns the topic only.
package bus
