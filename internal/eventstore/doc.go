// Package eventstore is the event store on Kafka: appends with expected versions and
// idempotent event ids, stream reads, and the fold of a WorkEffort stream, over the raw
// topics, shared by every ingest instance of one consumer group.
//
// How: the instances join a group over the raw topics only to own partitions (the group's
// balancer is eager and sticky, spreads each topic, and sends every member the whole
// ownership table with the advertised address of each owner, so a request for a partition
// owned elsewhere is forwarded there, once). For each partition it owns an instance keeps a
// transactional producer whose id is tied to the partition ("<group>-<topic>-<partition>")
// and an index rebuilt from the partition: per aggregate the versions and offsets of its
// events, and the event ids written within the dedupe window. One writer goroutine per
// partition decides appends in arrival order against the index and commits the accepted
// ones, as many as are waiting, in one transaction. A tail keeps the index up with records
// written by others.
//
// Where versions become authoritative: an event's version is its position, the number of
// its aggregate's keyed records on its raw partition up to and including it, whoever wrote
// it and whatever ce_aggregateversion header it carries. The index counts that way (in
// offset order, from the topic), and so does the upcaster, which stamps the number on the
// events record (internal/upcaster): every accepted event is in its stream and in every
// projection, versions contiguous per aggregate.
//
// Who appends here: ingest's routes (POST /v1/events, :batch, and POST /v1/eventstore/append,
// which takes events already encoded with their CloudEvents headers), and through the
// latter Pyrite's own writers, the GitHub saga and the deployment process manager, when the
// projector has --eventstore-url (Client; reactor.Appender). Their appends are checked like
// any store append: by event id (a redelivered outbox record is a duplicate) and, for the
// process manager's deadlines, by expected version (a timeout is appended only onto the
// stream version the manager has handled). Without that flag, and for any Kafka-native
// service, records written straight to the raw topics are outside writers (below): they
// still get a version, by position, but no expected-version check.
//
// Guarantees:
//   - Versions: an append's answer carries each event's position, read back from the
//     partition after the commit (at once when nothing was written between the writer's
//     decision and its records; by reading the partition otherwise). The record's
//     ce_aggregateversion header is the version the writer decided; it differs from the
//     position only when an outside write came in between (renumbered).
//   - Expected versions: an append whose expected version is not the stream's version when
//     its writer decides it fails with a *ConflictError naming the current version, and
//     nothing of it is written. An append is all or nothing: one transaction.
//   - One writer per partition: acquiring a partition initialises its transactional id,
//     which aborts the previous owner's open transaction and fences it: whatever that
//     instance still tries to commit fails (its appends answer ErrUnavailable). A partition
//     answers only after its writer fenced the previous one and its index caught up with the
//     last stable offset read after that, so the index holds every committed write.
//   - Ids: an append whose event ids were all written within the window (DedupeWindow by the
//     record's timestamp, at most DedupeMax ids per partition) returns the first write's
//     results and writes nothing. The window is rebuilt from the topic, so it holds across
//     restarts and ownership changes.
//   - Reads: Read and Version are answered by the owner from its index; they include every
//     append that returned before they were called. Read upcasts each event to the newest
//     schema version of its type with the upcaster's chain.
//   - A Store is safe for concurrent use.
//
// Limits:
//   - Writers outside the store (a Kafka-native service) are not checked against expected
//     versions: their records take the next position, and one landing between a store
//     append's decision and its commit is ordered before it, so that append's events get
//     versions one higher than expected (nothing is lost or shared). The tail may take
//     their records in up to 100ms late: it pauses after each poll that brought records, so
//     as not to read the store's own appends a second time. A raw record the
//     upcaster dead-letters is counted here but takes no version on the events topic.
//   - Ids are deduplicated per partition within the window only; an id reused for an
//     aggregate on another partition is not detected. An append without ids that answers
//     ErrUnavailable (or whose caller gave up) may have been written: retry with the same
//     ids for exactly-once.
//   - A batch is one partition's transaction: events for several partitions in one append
//     are refused (ErrSpansPartitions).
//   - Availability: a dead instance's partitions answer ErrNotOwner/ErrNotReady (503 at
//     ingest) until the session timeout passes and the group rebalances; every rebalance,
//     being eager, pauses every partition briefly.
//   - Rebuild: the first acquisition of a partition reads it from its start, so it takes
//     time in proportion to the partition, and the index keeps 16 bytes per event plus
//     per-aggregate and per-id overhead in memory. A partition kept across generations, or
//     acquired again by the instance that had it, resumes where its index stopped. A
//     compacted changelog or snapshot topic would bound this; it is not built.
//   - Adding partitions to a raw topic moves aggregates (murmur2 modulo the count): their
//     streams would continue on the new partition from version 1. Do not grow raw topics
//     without a migration.
//   - Read fetches an aggregate's records by offset: a stream spread thinly over a busy
//     partition costs up to one fetch per event.
package eventstore
