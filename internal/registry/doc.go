// Package registry is a Confluent-compatible schema registry: the Confluent
// Schema Registry REST API (subjects, versions, schemas by id and by GUID,
// references, compatibility, config, mode, soft and hard deletes, metadata
// and rule sets kept as data) and its error bodies,
// for AVRO schemas, with its state in a compacted Kafka topic ("_schemas")
// written in Confluent's own record format.
//
// Guarantees:
//   - State is rebuilt at start by reading the store topic to its end
//     (read_committed); ids, versions, config, mode and deletes survive
//     restarts.
//   - Writes are serialized within an instance; each one first catches up
//     with the topic, then commits its records in one Kafka transaction, and
//     is answered only once those records are read back and applied.
//   - One writer per cluster is expected. The writer's fixed transactional id
//     makes a newer instance fence an older one, which then answers writes
//     with 50001. Independently, every reader rejects a SCHEMA record that
//     would give an id to a second, different schema or change an existing
//     subject version, and the instance that wrote it answers 50001: two
//     instances never hand one id to two schemas.
//   - Two schemas are the same schema when their normalized forms,
//     references, metadata and rule sets match (defaults, docs, aliases and
//     properties count; formatting and name qualification do not).
//   - Every schema version has Confluent's GUID, derived from its SCHEMA
//     record as Confluent's MD5.ofSchema derives it (or the record's own
//     md5), so it is the same after a restart and on every instance.
//   - GET /schemas/ids/{id}?subject= falls back, as Confluent's registry
//     does, to the id in the default context when the subject lacks it. Every schema is parsed with a fresh hamba/avro
//     SchemaCache, never the global one.
//   - Bad input gets Confluent's error code; no request panics or gets a 500
//     unless Kafka fails. Registry is safe for concurrent use.
package registry
