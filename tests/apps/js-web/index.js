// A web process for StarlingMonkey: answer each fetch event. The dyno's env
// is process.env (the JS buildpack provides it), read per request.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.pathname === "/") {
    event.respondWith(new Response(`hello from js-web ${process.env.DYNO ?? ""}`.trimEnd()));
  } else if (url.pathname === "/env") {
    const lines = Object.entries(process.env).map(([k, v]) => `${k}=${v}\n`).sort();
    event.respondWith(new Response(lines.join("")));
  } else {
    event.respondWith(new Response("not found\n", { status: 404 }));
  }
});
