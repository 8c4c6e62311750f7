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
//     from, and releases the key: the records behind it go on (they do not wait for a
//     redrive). Nothing is dropped silently.
//   - The retry topic carries async handlers' queued deliveries and redriven dead letters
//     (pyrite dlq redrive): records in it are delivered to the handlers they name, after their
//     not-before time, by the group that owns the topic only.
package bus
