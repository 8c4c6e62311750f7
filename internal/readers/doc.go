// Package readers records the reader schemas live consumers decode with, and checks a new
// writer schema against them.
//
// A registry's compatibility levels compare a new schema with older versions of its
// subject. What breaks a running system is narrower and different: a consumer group that
// decodes a type into a reader schema of its own cannot read data written with a new
// version unless Avro resolution from that writer to that reader succeeds. Every Pyrite
// group records, at start, the reader schema version it decodes each event type with on
// the compacted topic pyrite.readers (key "<group>|<type>", value a JSON Reader naming the
// instance and time); outside services record theirs with `pyrite schema readers
// register`. Check then says which recorded readers cannot read a candidate, naming the
// group, the reader version and the field path.
//
// The groups that record are the projector's (the projection, reactors, saga and process
// manager), which decode every type into the newest version among the schemas built into
// the binary (bus.CodecDecoder). The upcaster and ingest's event store decode as written
// and upcast to the newest registered version, so no new version is unreadable to them;
// they record nothing.
//
// Guarantees: Publish and Remove return once Kafka acknowledged the records; Load reads
// the topic to the end offsets it had when called, so it sees every record acknowledged
// before. A Set is safe for concurrent use; Watch keeps one current until its context
// ends. A record is a statement about a group, not a lease: it stays until it is replaced
// or removed (`pyrite schema readers remove`), and its time says when it was last made.
package readers
