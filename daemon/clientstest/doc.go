// Package clientstest drives the real Webtask clients against a webtaskd
// started by the test: wt-cli 11.0.2 and sandboxjs 5.0.0 (pinned with
// express, body-parser and webtask-tools in package.json and the committed
// package-lock.json, installed with `npm ci` into ./node_modules on first
// use), plus the cron scheduler's minute-boundary runs. It has no code
// outside its tests.
package clientstest
