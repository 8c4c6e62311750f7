// Reads a topic the way a Node service that is not Pyrite would: a KafkaJS consumer and
// Confluent's AvroDeserializer (@confluentinc/schemaregistry), both with their default
// configuration.
//
//   REGISTRY_URL=http://127.0.0.1:8081 node consume.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   consume <brokers> <topic> <count> [--raw]
//       {"records": [{"partition", "offset", "key", "headers", "value" | "error"}]}
//       the first <count> records of the topic. Each value goes through the deserializer
//       (header wins, prefix otherwise; the subject from the default strategy, which falls
//       back to the topic name); one it refuses gets "error" instead. With --raw nothing is
//       deserialized (dead letters whose values are not Avro). Header values are hex.
//
// Departures from the defaults, each needed to read a topic once from its start: the
// consumer joins a fresh group (KafkaJS requires a groupId) and subscribes with
// fromBeginning (KafkaJS starts a new group at the end).

import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { SchemaRegistryClient } from '@confluentinc/schemaregistry/dist/schemaregistry-client.js';
import { AvroDeserializer } from '@confluentinc/schemaregistry/dist/serde/avro.js';
import { SerdeType } from '@confluentinc/schemaregistry/dist/serde/serde.js';
import { arg, flags, registryURL, run, UsageError } from './cli.mjs';

const timeoutMs = 30000;

await run('consume.mjs', {
  async consume(all) {
    const { pos, opts } = flags(all, []);
    const brokers = arg(pos, 0, 'brokers').split(',');
    const topic = arg(pos, 1, 'topic');
    const count = Number(arg(pos, 2, 'count'));
    if (!Number.isInteger(count) || count < 1) throw new UsageError('count must be a positive integer');

    const de = new AvroDeserializer(new SchemaRegistryClient({ baseURLs: [registryURL()] }), SerdeType.VALUE, {});
    const kafka = new Kafka({ clientId: 'pyrite-interop', brokers, logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: 'pyrite-interop-' + randomUUID() });
    const messages = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${messages.length} of ${count} records on ${topic} within ${timeoutMs} ms`)), timeoutMs);
        consumer.run({
          eachMessage: async ({ partition, message }) => {
            if (messages.length < count) messages.push({ partition, message });
            if (messages.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        }).catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
    const records = [];
    for (const { partition, message } of messages) {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) {
        headers[k] = Buffer.isBuffer(v) ? (k.startsWith('__') ? v.toString('hex') : v.toString('utf8')) : String(v);
      }
      const rec = { partition, offset: Number(message.offset), key: message.key?.toString('utf8') ?? null, headers };
      if (!opts.raw && message.value != null) {
        try {
          rec.value = await de.deserialize(topic, message.value, message.headers);
        } catch (err) {
          rec.error = String(err?.message ?? err);
        }
      }
      records.push(rec);
    }
    return { records };
  },
});
