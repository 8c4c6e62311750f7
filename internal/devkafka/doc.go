// Package devkafka is the embedded Kafka broker of `pyrite dev`: franz-go's
// kfake on a data directory, started through Start, which first checks the
// directory and afterwards closes what an unclean stop left open.
//
// What the embedded broker guarantees, measured on the kfake version in
// go.mod (TestCrashReproduction pins it):
//
//   - Records acknowledged before a SIGKILL of the process are on disk
//     (the broker writes each batch before it answers) and are served after
//     a restart. A power loss can lose the page cache: kfake fsyncs only on
//     segment roll and shutdown unless kfake.SyncWrites is set.
//   - Consumer group offsets and transactional state are kept in its own
//     logs and replayed on start.
//
// What it does not guarantee by itself, and what Start adds:
//
//   - A transaction open at an unclean stop is aborted in memory only: no
//     ABORT marker reaches the log. A read_committed franz-go or KafkaJS
//     consumer then drops the same producer's next committed transaction
//     too (it skips that producer's records until its next marker, the next
//     COMMIT), and the next full replay of the log (after a later unclean
//     stop, when the clean-shutdown snapshot no longer matches) pairs the
//     crash-era records with that COMMIT and serves them as committed:
//     records lost, then duplicated. Start scans every partition log before
//     the broker starts and writes a real ABORT marker (WriteTxnMarkers,
//     the KIP-664 admin path) for every producer whose transactional
//     records have no marker after them, before any client connects. A
//     real cluster does the same by itself when the transaction times out.
//   - kfake ends a transaction by writing its COMMIT markers, then the
//     consumer group offsets committed in it: a SIGKILL in between keeps the
//     records and loses the offsets, so a consume-transform-produce loop
//     reads its input again. Start cannot repair that (the offsets are
//     gone); the upcaster's idempotent sink (internal/upcaster, sink.go)
//     skips what is already on the events topics.
//   - kfake cuts a partition log at the first partial or corrupt batch,
//     even one followed by more data, and takes a batch without an index
//     entry for a non-transactional one. Check repairs what a crash leaves
//     at the end of a log (a partial last batch, index entries without
//     batches, batches at the end without index entries, which were never
//     acknowledged) and says so; it refuses to start, naming the file, on
//     damage in the middle of a log, which the broker would serve as a
//     shorter log.
//   - Memory grows with the events retained, not with time: with a data
//     directory kfake keeps an index entry per record batch in memory and
//     reads bodies back from the segment files (BenchmarkBrokerMemory:
//     about 80 MiB of live heap per million single-event batches). Domain
//     topics are kept forever; the README's "embedded broker" section says
//     when to move to a real cluster (compose/).
//
// What the embedded broker advertises: served through Listen, its
// ApiVersions answer lists SaslHandshake as versions 0..1, as real Kafka
// does; kfake alone lists 1..1 because it serves only v1 (SaslAuthenticate
// carries the SASL bytes) and not v0 (raw SASL bytes after the handshake).
// librdkafka 2.0.2 (Debian's kcat 1.7.1) uses SASL only when the list
// starts at 0, and then picks v1; franz-go, KafkaJS and librdkafka 2.11
// pick v1 either way. Listen patches that one field of
// kfake's own answer on its way out (kfake's controls replace an answer
// rather than amend it, so a control would have to recompute kfake's
// version downgrade, software name and cluster checks and its features);
// a v0 handshake still reaches kfake, which closes the connection.
//
// What the embedded broker serves to read_committed consumers: kfake leaves
// a partition's aborted transactions out of a Fetch answer when the
// request's byte limit (MaxBytes) cuts the answer inside that partition, so
// the consumer takes the aborted records it got as committed (franz-go,
// KafkaJS and librdkafka alike). Listen raises the MaxBytes of every
// read_committed Fetch request to the largest int32 before kfake reads it:
// each partition's answer then ends at its own limit (PartitionMaxBytes),
// where kfake does list the aborted transactions, and the answer is bounded
// by the sum of those limits (TestListenKeepsAbortedRecordsOut). The event
// store decides transactions by their markers besides (internal/eventstore).
//
// Start is for one broker in one process whose clients all start after it:
// it aborts every open transaction it finds, which is right only because
// no producer can be alive across the broker's own restart. Against a
// shared or real cluster use `pyrite txn list|abort` instead.
package devkafka
