// Package reactor is the base of Pyrite's side effects: reactors (the notification reactor,
// the seed's NotificationReactor, and the integration reactor, each run on the rules the
// domain modules declare: Notification, IntegrationRule; the webhook reactor,
// internal/webhook), sagas (the WorkEffort module's GitHub saga,
// internal/domain/workeffort/githubsaga) and process managers (the deployment module's,
// internal/domain/deployment), the last two started as a reactor.Spec. Each runs as its own
// consumer group on a bus.Runner. It knows no aggregate.
//
// What it gives them:
//   - Emitter: events written back to Kafka (raw topics for domain events and commands,
//     pyrite.integration for integration events), Avro-encoded with CloudEvents headers. The
//     correlation id is carried over, the causation id is the triggering event's ce_id, and
//     the ce_id is derived from the trigger's ce_id and a step name (EventID), so a
//     redelivered trigger yields the same id and consumers deduplicate by it.
//   - Stateful: the batch handler of sagas and process managers. Their state, their Kafka
//     positions and the events they decided to emit commit in one database transaction
//     (store.ApplyBatch with an Outbox), so a crash never loses or repeats a decision.
//   - Outbox: the transactional outbox's relay. Records are produced (idempotent producer,
//     in queue order) after the transaction committed and deleted once acknowledged; with an
//     Appender (Deps.Appender: the event store, over ingest's HTTP API) they are appended
//     there one at a time with their ce_id as the event id, so a repeat is a duplicate in
//     the store rather than a second record. A crash
//     between the acknowledgement and the delete writes a record again, with the same ce_id:
//     emitted events are at least once on the wire and exactly once after deduplication by
//     ce_id. We chose the outbox over "produce, then commit state" because the decision (a
//     deadline that fired, an issue that was created) is then made once and is durable
//     before anything leaves, and over "commit, then produce" because that loses the event
//     when the process dies between the two.
//   - Dedupe: at-least-once handlers whose side effect cannot join a database transaction
//     (an email, a webhook POST, a Kafka record) record the event's ce_id in the store's
//     processed_events after the effect and skip ids already recorded. A crash between the
//     effect and the record repeats the effect once; the effect carries the deterministic
//     id (Message-ID, webhook-id, ce_id) so that its receiver can drop the repeat. A Kafka
//     record (the integration event) is written once on its topic (OnceRecord): a "began"
//     row goes to processed_events before the write, and a redelivery that finds it without
//     "done" looks the record's key and ce_id up in the tail of its partition first.
//   - Replays: the reading side of the operator's replay marks on pyrite.replays. A group
//     does not fire again for records of a partition below the offset where a replay of
//     that group began.
//
// Ordering: one worker per partition (bus.Runner), so the events of one aggregate reach a
// reactor in order; emitted events keep the order of their decisions per consumer.
// Everything here is safe for concurrent use unless its doc says otherwise.
package reactor
