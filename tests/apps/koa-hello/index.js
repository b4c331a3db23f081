// A Koa app as it would run on any host.
const Koa = require('koa');

const app = new Koa();
app.use(async (ctx, next) => {
  if (ctx.path === '/') {
    ctx.body = 'Hello from Koa';
  } else if (ctx.path.startsWith('/users/')) {
    ctx.body = { id: ctx.path.slice('/users/'.length) };
  } else {
    await next();
  }
});

app.listen(process.env.PORT || 3000);
