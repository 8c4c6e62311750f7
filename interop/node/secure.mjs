// Talks to `pyrite dev --secure` as an outside client would, with what
// <data-dir>/secure/credentials.json holds: KafkaJS over TLS with SCRAM-SHA-256, and Confluent's
// registry client with HTTP Basic (basic.auth.user.info).
//
//   CREDENTIALS=<data-dir>/secure/credentials.json BROKERS=127.0.0.1:9092 \
//   REGISTRY_URL=http://127.0.0.1:8081 node secure.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   kafka-read <user> <topic> <key>     {"found", "records"}   reads topic from the start in a new
//                                       group until a record keyed <key> arrives (15 s at most)
//   kafka-connect <user>                {"topics"}   connects and lists topics
//   kafka-write <user> <topic> <key>    {"offset"}   produces one record (no retries)
//   sr-register <role> <subject> <f>    {"id"}   registers as reader, writer or admin
//   sr-delete <role> <subject>          {"versions"}   deletes the subject (soft)
// KAFKA_PASSWORD and KAFKA_CA, when set, replace the user's password and the CA file: the
// tests use them to show a wrong password and a wrong CA failing.

import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import SnappyJS from 'snappyjs';
import { SchemaRegistryClient } from '@confluentinc/schemaregistry/dist/schemaregistry-client.js';
import { arg, readSchema, run } from './cli.mjs';

const { CompressionCodecs, CompressionTypes, Kafka, logLevel } = kafkajs;

// kfake (the embedded Kafka) answers a SaslHandshake it accepts without the list of enabled
// mechanisms, which real brokers always send and KafkaJS checks for the one it asked for. Only
// for that answer (no error, empty list) is the list filled with the mechanism asked for; the
// SCRAM exchange, TLS and every refusal are KafkaJS's and the broker's own.
{
  const handshake = createRequire(import.meta.url)('kafkajs/src/protocol/requests/saslHandshake/v1/response.js');
  const decode = handshake.decode;
  handshake.decode = async (raw) => {
    const r = await decode(raw);
    if (r.errorCode === 0 && r.enabledMechanisms.length === 0) r.enabledMechanisms = [creds().kafka.mechanism];
    return r;
  };
}

// Pyrite's producers (franz-go) compress with Snappy, which KafkaJS leaves to a codec: this one
// reads raw Snappy blocks and Java clients' xerial framing (magic, version, then length-prefixed
// blocks), and writes raw blocks.
const xerial = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
CompressionCodecs[CompressionTypes.Snappy] = () => ({
  async compress(encoder) {
    return Buffer.from(SnappyJS.compress(encoder.buffer));
  },
  async decompress(buffer) {
    if (buffer.length < 16 || !buffer.subarray(0, 8).equals(xerial)) return Buffer.from(SnappyJS.uncompress(buffer));
    const blocks = [];
    for (let at = 16; at < buffer.length;) {
      const n = buffer.readUInt32BE(at);
      blocks.push(Buffer.from(SnappyJS.uncompress(buffer.subarray(at + 4, at + 4 + n))));
      at += 4 + n;
    }
    return Buffer.concat(blocks);
  },
});

const creds = () => JSON.parse(readFileSync(process.env.CREDENTIALS, 'utf8'));

function kafka(user) {
  const c = creds();
  const u = c.kafka.users[user];
  if (!u) throw new Error(`no Kafka user ${user} in the credentials`);
  return new Kafka({
    clientId: 'pyrite-interop-kafkajs',
    brokers: process.env.BROKERS.split(','),
    ssl: { ca: [readFileSync(process.env.KAFKA_CA || c.kafka.ca, 'utf8')] },
    sasl: { mechanism: c.kafka.mechanism.toLowerCase(), username: u.user, password: process.env.KAFKA_PASSWORD || u.password },
    connectionTimeout: 3000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
}

function registry(role) {
  const userInfo = creds().registry[role];
  if (!userInfo) throw new Error(`no registry role ${role} in the credentials`);
  return new SchemaRegistryClient({
    baseURLs: [process.env.REGISTRY_URL],
    basicAuthCredentials: { credentialsSource: 'USER_INFO', userInfo },
    maxRetries: 0,
    cacheCapacity: 10,
  });
}

await run('secure.mjs', {
  async 'kafka-read'(argv) {
    const [user, topic, key] = [arg(argv, 0, 'user'), arg(argv, 1, 'topic'), arg(argv, 2, 'key')];
    const consumer = kafka(user).consumer({ groupId: `interop-kafkajs-${randomUUID()}`, readUncommitted: false });
    await consumer.connect();
    let records = 0;
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const found = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(false), 15000);
        consumer.run({
          eachMessage: async ({ message }) => {
            records++;
            if (message.key?.toString() === key) {
              clearTimeout(timer);
              resolve(true);
            }
          },
        }).catch(reject);
      });
      return { found, records };
    } finally {
      await consumer.disconnect();
    }
  },

  async 'kafka-connect'(argv) {
    const admin = kafka(arg(argv, 0, 'user')).admin();
    await admin.connect();
    try {
      return { topics: (await admin.listTopics()).sort() };
    } finally {
      await admin.disconnect();
    }
  },

  async 'kafka-write'(argv) {
    const [user, topic, key] = [arg(argv, 0, 'user'), arg(argv, 1, 'topic'), arg(argv, 2, 'key')];
    const producer = kafka(user).producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
    await producer.connect();
    try {
      const [md] = await producer.send({ topic, messages: [{ key, value: 'from kafkajs' }] });
      return { offset: md.baseOffset ?? md.offset ?? null };
    } finally {
      await producer.disconnect();
    }
  },

  async 'sr-register'(argv) {
    const [role, subject] = [arg(argv, 0, 'role'), arg(argv, 1, 'subject')];
    const schema = readSchema(arg(argv, 2, 'schema file'));
    return { id: await registry(role).register(subject, { schemaType: 'AVRO', schema }, false) };
  },

  async 'sr-delete'(argv) {
    const [role, subject] = [arg(argv, 0, 'role'), arg(argv, 1, 'subject')];
    return { versions: await registry(role).deleteSubject(subject, false) };
  },
});
