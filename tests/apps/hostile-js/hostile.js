// npm lifecycle scripts of a hostile app and of its file: dependency try
// what a build must not be able to do; each writes what worked into
// report-STAGE.txt in the app (npm's INIT_CWD), one `what: ok|denied` line
// per attempt. The test gives the host's paths through config vars.
const fs = require("fs");
const stage = process.argv[2];
const { HOSTILE_HOME: home = "", HOSTILE_VICTIM_CACHE: victim = "", HOSTILE_MARK: mark = "" } = process.env;
const lines = [`uid: ${process.getuid()}`];
const said = (what, ok) => lines.push(`${what}: ${ok ? "ok" : "denied"}`);
const tried = (f) => {
  try {
    f();
    return true;
  } catch {
    return false;
  }
};
said("read the API token", tried(() => fs.readFileSync(`${home}/api-token`)));
said("read /etc/shadow", tried(() => fs.readFileSync("/etc/shadow")));
said("read another app's cache", tried(() => fs.readFileSync(`${victim}/secret`)));
said("list the ledger", tried(() => fs.readdirSync(`${home}/db`)));
said("read pid 1's environment", tried(() => fs.readFileSync("/proc/1/environ")));
said("see the daemon's env var", "DAEMON_SECRET_FOR_TEST" in process.env);
said("see WDYNO_HOME", "WDYNO_HOME" in process.env);
said("rewrite a buildpack", tried(() => fs.appendFileSync(`${home}/buildpacks/js/bin/compile`, "pwned\n")));
said("add a buildpack file", tried(() => fs.writeFileSync(`${home}/buildpacks/pwned`, "pwned\n")));
said(
  "change the shared tools",
  tried(() => fs.appendFileSync("/tools/package.json", "pwned\n")) ||
    tried(() => fs.writeFileSync("/tools/pwned", "pwned\n")) ||
    tried(() => fs.writeFileSync(`${victim}/../.tools/pwned`, "pwned\n")),
);
said("write /usr/local/bin", tried(() => fs.writeFileSync("/usr/local/bin/pwned", "pwned\n")));
said("write /tmp", tried(() => fs.writeFileSync(`/tmp/wdyno-hostile-${mark}-${stage}`, "pwned\n")));
const app = process.env.INIT_CWD;
said("write its own build dir", tried(() => fs.writeFileSync(`${app}/written-by-${stage}`, "ok\n")));
fs.writeFileSync(`${app}/report-${stage}.txt`, lines.join("\n") + "\n");
