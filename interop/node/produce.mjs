// Produces to Kafka the way a Node service that is not Pyrite would: the value serialized by
// Confluent's AvroSerializer (@confluentinc/schemaregistry) against the registry, the record
// sent by KafkaJS with its default (Java-compatible murmur2) partitioner.
//
//   REGISTRY_URL=http://127.0.0.1:8081 node produce.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   produce <brokers> <topic> <subject> <schema id> <key> <json|-> [--header]
//       {"partition", "offset", "hex", "magic", "id", "header"}   one record, acks from all replicas
//
// The serializer is pinned to the schema id (useSchemaId) with a fixed subject, as in
// confluent.mjs; it never registers anything. With --header it runs in header mode
// (HeaderSchemaIdSerializer): the schema GUID goes in the __value_schema_id header and the
// value is the bare Avro body; "header" is that header's value in hex (null without it).

import { Kafka, logLevel } from 'kafkajs';
import { SchemaRegistryClient } from '@confluentinc/schemaregistry/dist/schemaregistry-client.js';
import { AvroSerializer } from '@confluentinc/schemaregistry/dist/serde/avro.js';
import { HeaderSchemaIdSerializer, SerdeType, VALUE_SCHEMA_ID_HEADER } from '@confluentinc/schemaregistry/dist/serde/serde.js';
import { arg, flags, frame, parseID, parseValue, registryURL, run } from './cli.mjs';

await run('produce.mjs', {
  async produce(all) {
    const { pos: argv, opts } = flags(all, []);
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
      ...(opts.header ? { schemaIdSerializer: HeaderSchemaIdSerializer } : {}),
    });
    const headers = {};
    const buf = await ser.serialize(topic, value, headers);

    // Logging off: stdout carries the one JSON answer.
    const kafka = new Kafka({ clientId: 'pyrite-interop', brokers, logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      const [res] = await producer.send({ topic, acks: -1, messages: [{ key, value: buf, headers }] });
      const header = headers[VALUE_SCHEMA_ID_HEADER];
      return {
        partition: res.partition, offset: Number(res.baseOffset), hex: buf.toString('hex'), ...frame(buf),
        header: header ? Buffer.from(header).toString('hex') : null,
      };
    } finally {
      await producer.disconnect();
    }
  },
});
