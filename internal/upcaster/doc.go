// Package upcaster is the stage between the raw and the events topics: a consumer group over
// every pyrite.<aggregate>.raw topic that writes each record to pyrite.<aggregate>.events
// re-encoded at the newest schema version of its type (internal/upcast does the upcasting),
// or to pyrite.upcaster.dlq when it cannot.
//
// Guarantees:
//   - Exactly once (Transactional mode, the default): each polled batch's events, its dead
//     letters and the batch's consumed offsets are written in one Kafka transaction
//     (franz-go's GroupTransactSession). A read_committed consumer of the events topics sees
//     every committed raw record once, across crashes and rebalances: a batch cut short by a
//     crash, a rebalance or an unavailable registry is aborted and read again. Raw topics are
//     read with read_committed, so records of aborted producer transactions are never upcast.
//     The events topics are also an idempotent sink (sink.go): a broker that keeps a
//     transaction's records but loses its offset commit (the embedded kfake, killed between
//     the two) does not make the stage write them again. An exact repeat of a raw record
//     with a ce_id within the last 10,000 offsets of its partition (dedupe.go: kfake keeps
//     no producer state across a restart, so an outside producer's retry can land twice)
//     is dropped, in transactional mode.
//   - Order: an event is written to the partition of its events topic with its raw record's
//     partition number, by one worker per partition in offset order, so per-partition and so
//     per-aggregate order is kept whatever partitioner the raw producer used.
//   - Poison never blocks: a value that is not Confluent-framed, has an unknown schema ID or a
//     schema the codec cannot use, a type the topology does not route to that raw topic, a
//     body that does not fit its schema, a version with no path to the newest, or an upcaster
//     function error goes to pyrite.upcaster.dlq (inside the same transaction) with its key,
//     value and headers and the Header* headers saying why and where from; the partition moves
//     on. An unavailable registry is not poison: the batch is aborted and retried with capped
//     backoff, and /readyz says why.
//   - Start: Run refuses to start, naming every gap, when a registered version of a routed
//     subject has no path to the newest (upcast.Upcaster.Check).
//
// Versions: the upcaster is where aggregate versions become authoritative. Each event is
// stamped ce_aggregateversion = the number of its key's events on its events partition up to
// it (replacing what the raw record said), from counts kept per owned partition, loaded from
// the events partition on first use after an assignment, and advanced only when the batch's
// transaction commits. In AtLeastOnce mode a crash between produce and commit numbers the
// records written again anew.
//
// Headers: a raw record's headers are kept. CloudEvents headers it lacks (or has empty) are
// derived: ce_specversion "1.0"; ce_id the UUID v5 of "<topic>/<partition>/<offset>" (the same
// on every retry); ce_source DefaultSource; ce_time the record timestamp; ce_subject the key;
// ce_aggregatetype the aggregate; ce_correlationid the ce_id. ce_type is always the type of
// the value's schema and content-type always application/avro. HeaderFromVersion and
// HeaderFromSchemaID record the version read; HeaderRawTopic, HeaderRawPartition and
// HeaderRawOffset the raw record.
//
// AtLeastOnce mode (for comparison) produces idempotently and commits offsets after the batch
// is acknowledged: a crash in between writes records again.
//
// A Stage is run once; Ready is safe for concurrent use with Run.
package upcaster
