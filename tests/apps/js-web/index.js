// A web process for StarlingMonkey: answer each fetch event.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.pathname === "/") {
    event.respondWith(new Response("hello from js-web"));
  } else {
    event.respondWith(new Response("not found\n", { status: 404 }));
  }
});
