// Drives a schema registry through @kafkajs/confluent-schema-registry, the registry client most
// KafkaJS services use.
//
//   REGISTRY_URL=http://127.0.0.1:8081 node kafkajs.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   register <subject> <schema.avsc>          {"id"}   GET /config/{s}, POST /subjects/{s}/versions,
//                                             and PUT /config/{s} BACKWARD on a subject's first one
//   lookup <subject> <schema.avsc>            {"id"}   POST /subjects/{s}
//   get <id>                                  {"id", "name", "schema"}   GET /schemas/ids/{id}
//   latest <subject>                          {"id"}   GET /subjects/{s}/versions/latest
//   version <subject> <n>                     {"id"}   GET /subjects/{s}/versions/{n}
//   serialize <id> <json|->                   {"hex", "magic", "id"}   SchemaRegistry.encode
//   deserialize <hex|-> [--reader f.avsc]     {"magic", "id", "value"}   SchemaRegistry.decode,
//                                             resolved into the reader schema when one is given
//
// This library names a subject from the schema (namespace + "." + name) unless told otherwise,
// which is Pyrite's RecordNameStrategy; the scripts still pass the subject explicitly.

import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { arg, flags, frame, parseHex, parseID, parseValue, readSchema, registryURL, run } from './cli.mjs';

function registry() {
  // No retries: a refusal must surface at once, and a test must not wait out back-off.
  return new SchemaRegistry({ host: registryURL(), retry: { retries: 0 } });
}

const avro = (schema) => ({ type: SchemaType.AVRO, schema });

await run('kafkajs.mjs', {
  async register(argv) {
    const subject = arg(argv, 0, 'subject');
    const schema = readSchema(arg(argv, 1, 'schema file'));
    const { id } = await registry().register(avro(schema), { subject });
    return { id };
  },

  async lookup(argv) {
    const subject = arg(argv, 0, 'subject');
    const schema = readSchema(arg(argv, 1, 'schema file'));
    return { id: await registry().getRegistryIdBySchema(subject, avro(schema)) };
  },

  async get(argv) {
    const id = parseID(arg(argv, 0, 'schema id'));
    const type = await registry().getSchema(id);
    // exportAttrs keeps defaults, which avsc leaves out of a schema by default.
    return { id, name: type.name ?? null, schema: JSON.stringify(type.schema({ exportAttrs: true })) };
  },

  async latest(argv) {
    return { id: await registry().getLatestSchemaId(arg(argv, 0, 'subject')) };
  },

  async version(argv) {
    const subject = arg(argv, 0, 'subject');
    const version = arg(argv, 1, 'version');
    return { id: await registry().getRegistryId(subject, version) };
  },

  async serialize(argv) {
    const id = parseID(arg(argv, 0, 'schema id'));
    const value = parseValue(arg(argv, 1, 'value JSON'));
    const buf = await registry().encode(id, value);
    return { hex: buf.toString('hex'), ...frame(buf) };
  },

  async deserialize(argv) {
    const { pos, opts } = flags(argv, ['reader']);
    const buf = parseHex(arg(pos, 0, 'hex bytes'));
    const options = opts.reader
      ? { [SchemaType.AVRO]: { readerSchema: JSON.parse(readSchema(opts.reader)) } }
      : undefined;
    const value = await registry().decode(buf, options);
    return { ...frame(buf), value };
  },
});
