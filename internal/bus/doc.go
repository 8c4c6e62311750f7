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
//     again. A record whose handlers fail transiently goes to the group's retry topic and is
//     redelivered, after a delay, to the failing handlers only (later records of the same
//     aggregate do not wait for it); a permanent failure, or the last allowed attempt, goes
//     to the group's dead-letter topic with the original key, value and headers plus headers
//     that say why, how often and where from. Nothing is dropped silently.
package bus
