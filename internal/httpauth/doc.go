// Package httpauth authenticates requests to Pyrite's HTTP servers, as
// middleware around a server's own handler (so /healthz, /readyz and
// /metrics, served beside it, stay open):
//
//   - Tokens: bearer tokens, each with a principal and the event types it may
//     write (bus patterns such as "Deployment:*"). Ingest checks every event
//     of a request against the token's scope; the projector only asks for a
//     valid token. RequireRead also takes the token from the
//     pyrite_read_token cookie on GET and HEAD (never on writes), which
//     Session (the board's sign-in at /v1/session) sets, since a browser's
//     EventSource cannot send a header.
//   - Basic: HTTP Basic users with the schema registry's roles (reader,
//     writer, admin), as Confluent clients send them (basic.auth.user.info).
//
// A request without credentials, or with unknown ones, is answered 401 with
// a WWW-Authenticate challenge; valid credentials without the needed right
// get 403. Secrets are compared in constant time and never appear in
// answers, errors or logs.
package httpauth
