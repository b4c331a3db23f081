// A dependency's own lifecycle scripts run the same attempts (the stage is
// in process.argv[2], as for the app's own).
require("../hostile.js");
