'use strict';
// The built-in @webtask/* modules, registered in resolve.js's
// builtinExtensions when the agent starts (requiring them needs no install).

const { builtinExtensions } = require('../resolve');
const middlewareCompiler = require('./middleware-compiler');
const auth = require('./auth-middleware');

builtinExtensions['@webtask/middleware-compiler'] = middlewareCompiler;
builtinExtensions['@webtask/cron-auth-middleware'] = auth.createCronAuthenticationMiddleware;
builtinExtensions['@webtask/bearer-auth-middleware'] = auth.createAuthenticationMiddleware;
