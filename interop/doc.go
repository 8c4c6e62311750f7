// Package interop holds tests, and only tests, that check Pyrite's schema registry and Avro codec
// against client libraries nobody on this project wrote: Confluent's Node client
// (@confluentinc/schemaregistry) and @kafkajs/confluent-schema-registry, run as real Node
// processes from interop/node.
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
