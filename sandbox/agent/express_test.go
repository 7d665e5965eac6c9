package agent_test

import (
	"os"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// TestRealExpressWithWebtaskTools runs a real Express app through
// webtask-tools' fromExpress, when a node_modules directory holding
// express, body-parser and webtask-tools is named by
// WEBTASKD_TEST_NODE_MODULES (npm install express@4 body-parser webtask-tools).
func TestRealExpressWithWebtaskTools(t *testing.T) {
	if os.Getenv("WEBTASKD_TEST_NODE_MODULES") == "" {
		t.Skip("SKIPPING: set WEBTASKD_TEST_NODE_MODULES to a node_modules with express, body-parser, webtask-tools")
	}
	code := `
var express = require('express');
var bodyParser = require('body-parser');
var Webtask = require('webtask-tools');
var app = express();
app.use(bodyParser.json());
app.get('/hello/:who', function (req, res) {
	res.set('X-Who', req.params.who);
	res.json({who: req.params.who, q: req.query.x, secret: req.webtaskContext.secrets.S, orig: req.originalUrl});
});
app.post('/echo', function (req, res) { res.status(201).send({got: req.body}); });
app.get('/redirect', function (req, res) { res.redirect('/elsewhere'); });
app.get('/boom', function (req, res, next) { next(new Error('express error')); });
module.exports = Webtask.fromExpress(app);`
	runCases(t, []progCase{
		{name: "GET with params", code: code,
			tweak: func(r *agent.Request) {
				r.URL = "/api/run/c/n/hello/ann?x=1"
				r.Secrets = map[string]any{"S": "s"}
			},
			status: 200, wantJSON: `{"who":"ann","q":"1","secret":"s","orig":"/api/run/c/n/hello/ann?x=1"}`,
			wantHdr: map[string]string{"x-who": "ann", "content-type": "application/json; charset=utf-8"}},
		{name: "POST json via body-parser", code: code,
			tweak: func(r *agent.Request) {
				r.Method = "POST"
				r.URL = "/api/run/c/n/echo"
				r.Headers["content-type"] = []string{"application/json"}
				r.Headers["content-length"] = []string{"7"}
				r.Body = []byte(`{"a":1}`)
			},
			status: 201, wantJSON: `{"got":{"a":1}}`},
		{name: "redirect", code: code, tweak: func(r *agent.Request) { r.URL = "/api/run/c/n/redirect" },
			status: 302, wantHdr: map[string]string{"location": "/elsewhere"}},
		{name: "404 from finalhandler", code: code, tweak: func(r *agent.Request) { r.URL = "/api/run/c/n/nothing" },
			status: 404},
		{name: "next(err) 500", code: code, tweak: func(r *agent.Request) { r.URL = "/api/run/c/n/boom" },
			status: 500},
	})
}
