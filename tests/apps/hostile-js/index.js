// Serves what the npm lifecycle scripts could do, stage by stage (the
// reports are text the bundler inlines at build time).
import pre from "./report-preinstall.txt";
import post from "./report-postinstall.txt";
import depPre from "./report-dep-preinstall.txt";
import depPost from "./report-dep-postinstall.txt";
import dep from "hostile-dep";

const report = [
  ["preinstall", pre],
  ["postinstall", post],
  ["dep-preinstall", depPre],
  ["dep-postinstall", depPost],
]
  .map(([stage, text]) => `== ${stage}\n${text}`)
  .join("");

addEventListener("fetch", (event) => {
  event.respondWith(new Response(`${report}== ${dep} bundled\n`));
});
