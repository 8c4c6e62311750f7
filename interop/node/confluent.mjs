// Drives a schema registry through Confluent's own Node client, @confluentinc/schemaregistry.
//
//   REGISTRY_URL=http://127.0.0.1:8081 node confluent.mjs <command> [args...]
//
// Commands (output is one JSON document; see cli.mjs for exit codes and error shape):
//   register <subject> <schema.avsc>          {"id", "version"?}   POST /subjects/{s}/versions
//   lookup <subject> <schema.avsc>            {"id", "version", "subject"}   POST /subjects/{s}
//   get <id> [--subject s]                    {"id", "schema", "schemaType"}   GET /schemas/ids/{id}
//   latest <subject>                          {"id", "version", "schema"}
//   versions <subject>                        {"versions": [...]}
//   compat <subject> <schema.avsc>            {"compatible"}   POST /compatibility/.../latest
//   serialize <subject> <id> <json|->         {"hex", "magic", "id"}   AvroSerializer
//   deserialize <subject> <hex|-> [--latest]  {"magic", "id", "value"}   AvroDeserializer
//
// The serde classes pick a subject with a strategy; Pyrite's subject is the record's full name.
// The library's RECORD strategy derives that name from the schema it is handed, which for a
// serializer with a pinned schema id is none at all, so the scripts pass a fixed-subject strategy
// function instead (the library's documented `subjectNameStrategy` hook) and pin the writer
// schema with `useSchemaId`; autoRegisterSchemas is off, so serializing never registers.
// --latest makes the deserializer resolve the writer's data into the subject's latest version.

// The modules are imported one by one: the package's index also loads every cloud KMS SDK for
// client-side field encryption, which Pyrite does not use and which takes most of a second.
import { SchemaRegistryClient } from '@confluentinc/schemaregistry/dist/schemaregistry-client.js';
import { AvroDeserializer, AvroSerializer } from '@confluentinc/schemaregistry/dist/serde/avro.js';
import { SerdeType } from '@confluentinc/schemaregistry/dist/serde/serde.js';
import { arg, flags, frame, parseHex, parseID, parseValue, readSchema, registryURL, run } from './cli.mjs';

function client() {
  // No retries: a refusal must surface at once, and a test must not wait out back-off.
  return new SchemaRegistryClient({ baseURLs: [registryURL()], maxRetries: 0, cacheCapacity: 100 });
}

const avro = (schema) => ({ schemaType: 'AVRO', schema });
const fixedSubject = (subject) => () => subject;

await run('confluent.mjs', {
  async register(argv) {
    const subject = arg(argv, 0, 'subject');
    const schema = readSchema(arg(argv, 1, 'schema file'));
    const md = await client().registerFullResponse(subject, avro(schema), false);
    return { id: md.id, version: md.version ?? null };
  },

  async lookup(argv) {
    const subject = arg(argv, 0, 'subject');
    const schema = readSchema(arg(argv, 1, 'schema file'));
    const md = await client().getIdFullResponse(subject, avro(schema), false);
    return { id: md.id, version: md.version ?? null, subject: md.subject ?? null };
  },

  async get(argv) {
    const { pos, opts } = flags(argv, ['subject']);
    const id = parseID(arg(pos, 0, 'schema id'));
    const info = await client().getBySubjectAndId(opts.subject ?? '', id);
    return { id, schema: info.schema, schemaType: info.schemaType ?? null };
  },

  async latest(argv) {
    const md = await client().getLatestSchemaMetadata(arg(argv, 0, 'subject'));
    return { id: md.id, version: md.version, schema: md.schema };
  },

  async versions(argv) {
    return { versions: await client().getAllVersions(arg(argv, 0, 'subject')) };
  },

  async compat(argv) {
    const subject = arg(argv, 0, 'subject');
    const schema = readSchema(arg(argv, 1, 'schema file'));
    return { compatible: await client().testSubjectCompatibility(subject, avro(schema)) };
  },

  async serialize(argv) {
    const subject = arg(argv, 0, 'subject');
    const id = parseID(arg(argv, 1, 'schema id'));
    const value = parseValue(arg(argv, 2, 'value JSON'));
    const ser = new AvroSerializer(client(), SerdeType.VALUE, {
      autoRegisterSchemas: false,
      useSchemaId: id,
      subjectNameStrategy: fixedSubject(subject),
    });
    const buf = await ser.serialize('pyrite.interop', value);
    return { hex: buf.toString('hex'), ...frame(buf) };
  },

  async deserialize(argv) {
    const { pos, opts } = flags(argv, []);
    const subject = arg(pos, 0, 'subject');
    const buf = parseHex(arg(pos, 1, 'hex bytes'));
    const de = new AvroDeserializer(client(), SerdeType.VALUE, {
      useLatestVersion: Boolean(opts.latest),
      subjectNameStrategy: fixedSubject(subject),
    });
    const value = await de.deserialize('pyrite.interop', buf);
    return { ...frame(buf), value };
  },
});
