'use strict';
// @webtask/cron-auth-middleware and @webtask/bearer-auth-middleware, built
// in: middleware factories refusing callers without the expected bearer
// token with a 401.

function createCronAuthenticationMiddleware() {
  return function cronAuthenticationMiddleware(req, res, next) {
    const ctx = req.webtaskContext;
    const m = String(req.headers.authorization || '').trim().match(/^bearer (.+)$/i);
    if (!m || !ctx.token || ctx.token !== m[1]) return next(unauthenticated());
    return next();
  };
}

function createAuthenticationMiddleware() {
  return function authMiddleware(req, res, next) {
    const ctx = req.webtaskContext;
    const secret = ctx.secrets && ctx.secrets['wt-auth-secret'];
    if (!secret) return next();
    const m = String(ctx.headers.authorization || '').trim().match(/^bearer\s+(.+[^\s-])\s*$/i);
    return next(m && m[1] === secret ? undefined : unauthenticated());
  };
}

function unauthenticated() {
  const err = new Error('Unauthenticated extensibility point');
  err.statusCode = 401;
  return err;
}

module.exports = { createCronAuthenticationMiddleware, createAuthenticationMiddleware };
