// A web app for StarlingMonkey (componentize-js): answer fetch events.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.pathname === "/") {
    event.respondWith(new Response("Hello from js-web\n"));
  } else {
    event.respondWith(new Response("not found\n", { status: 404 }));
  }
});
