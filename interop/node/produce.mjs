// Produces to Kafka the way a Node service that is not Pyrite would: the value serialized by
// Confluent's AvroSerializer (@confluentinc/schemaregistry) against the registry, the record
// sent by KafkaJS with its default (Java-compatible murmur2) partitioner.
//
//   REGISTRY_URL=http://127.0.0.1:8081 node produce.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   produce <brokers> <topic> <subject> <schema id> <key> <json|->
//       {"partition", "offset", "hex", "magic", "id"}   one record, acks from all replicas
//
// The serializer is pinned to the schema id (useSchemaId) with a fixed subject, as in
// confluent.mjs; it never registers anything.

import { Kafka, logLevel } from 'kafkajs';
import { SchemaRegistryClient } from '@confluentinc/schemaregistry/dist/schemaregistry-client.js';
import { AvroSerializer } from '@confluentinc/schemaregistry/dist/serde/avro.js';
import { SerdeType } from '@confluentinc/schemaregistry/dist/serde/serde.js';
import { arg, frame, parseID, parseValue, registryURL, run } from './cli.mjs';

await run('produce.mjs', {
  async produce(argv) {
    const brokers = arg(argv, 0, 'brokers').split(',');
    const topic = arg(argv, 1, 'topic');
    const subject = arg(argv, 2, 'subject');
    const id = parseID(arg(argv, 3, 'schema id'));
    const key = arg(argv, 4, 'key');
    const value = parseValue(arg(argv, 5, 'value JSON'));

    const registry = new SchemaRegistryClient({ baseURLs: [registryURL()], maxRetries: 0, cacheCapacity: 100 });
    const ser = new AvroSerializer(registry, SerdeType.VALUE, {
      autoRegisterSchemas: false,
      useSchemaId: id,
      subjectNameStrategy: () => subject,
    });
    const buf = await ser.serialize(topic, value);

    // Logging off: stdout carries the one JSON answer.
    const kafka = new Kafka({ clientId: 'pyrite-interop', brokers, logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      const [res] = await producer.send({ topic, acks: -1, messages: [{ key, value: buf }] });
      return { partition: res.partition, offset: Number(res.baseOffset), hex: buf.toString('hex'), ...frame(buf) };
    } finally {
      await producer.disconnect();
    }
  },
});
