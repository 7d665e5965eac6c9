// Templates offered when creating a webtask.
export const TEMPLATES = [
  {
    name: 'Hello (ctx, cb)',
    code: "module.exports = function (ctx, cb) {\n  console.log('hello called with', JSON.stringify(ctx.query));\n  cb(null, { hello: ctx.query.name || 'world' });\n};\n",
  },
  {
    name: 'HTTP (ctx, req, res)',
    code: "module.exports = function (ctx, req, res) {\n  res.writeHead(200, { 'Content-Type': 'application/json' });\n  res.end(JSON.stringify({ method: req.method, url: req.url }));\n};\n",
  },
  {
    name: 'Storage counter',
    code: "module.exports = function (ctx, cb) {\n  ctx.storage.get(function (err, data) {\n    if (err) return cb(err);\n    data = data || { count: 0 };\n    data.count++;\n    ctx.storage.set(data, function (err) {\n      cb(err, data);\n    });\n  });\n};\n",
  },
  {
    name: 'Uses a secret',
    code: "module.exports = function (ctx, cb) {\n  cb(null, { configured: Boolean(ctx.secrets.API_KEY) });\n};\n",
    secrets: { API_KEY: 'change me' },
  },
  { name: 'Empty', code: 'module.exports = function (ctx, cb) {\n  cb(null, {});\n};\n' },
];
