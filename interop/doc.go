// Package interop holds tests, and only tests, that check Pyrite's schema registry and Avro codec
// against client libraries nobody on this project wrote: Confluent's Node client
// (@confluentinc/schemaregistry) and @kafkajs/confluent-schema-registry, run as real Node
// processes from interop/node, KafkaJS, Confluent's Go serde
// (confluent-kafka-go/v2/schemaregistry, avrov2) and franz-go's pkg/sr.
//
// TestStockClientsReadEveryTopic runs ingest, the upcaster and the projector with the Kafka
// options their mains use by default, and checks with every client left at its defaults (the
// few departures are said where they are made): v1 written to raw in the prefix framing and in
// header mode comes out as v3 on the events topic that both Go deserializers decode; the
// integration event decodes; KafkaJS with Confluent's Node deserializer reads raw, events,
// integration, a group's retry and dead-letter topics and the upcaster's dead-letter topic.
//
// What the tests prove: schemas those clients register get ids our registry serves back; lookups
// and reads by id agree; an incompatible version is refused with HTTP 409 and nothing is stored;
// Confluent-framed Avro bytes each client serializes decode with internal/codec (as written and
// resolved into a newer version), and bytes internal/codec encodes decode in both clients.
//
// The tests need Node 20 or later and the locked packages: run `npm ci --prefix interop/node`
// once. Without them the tests fail, never skip. Each test starts its own in-process Kafka
// (kfake) and registry on loopback, so tests are independent and need no network.
package interop
