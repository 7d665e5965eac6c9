// Package types holds webtaskd's wire and domain types: what the HTTP API
// sends and receives beyond the Webtask reference's own shapes, and what
// the daemon's parts hand each other. It imports nothing outside the
// standard library, so a client (wtctl) links no sandbox, store or
// libcontainer code and cross-compiles anywhere.
package types
