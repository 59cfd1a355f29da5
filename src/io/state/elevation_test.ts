/** The elevation probe (`net session`) and the Windows state directory, without Windows. */
import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { CommandError, RecordingRunner } from "../command.ts";
import { stateDirFor, statePath } from "./dir.ts";
import {
  checkElevated,
  ELEVATION_PROBE,
  isElevationRefusal,
  NOT_ELEVATED_MESSAGE,
  NotElevatedError,
  notElevatedError,
} from "./elevation.ts";

const result = (code: number, stdout: string, stderr = "") => ({ code, stdout, stderr });

Deno.test("notElevatedError() reads net session's exit code, in any language", () => {
  const listing = "There are no entries in the list.\r\n";
  assertEquals(notElevatedError(result(0, listing)), undefined);
  const denied = notElevatedError(
    result(2, "", "System error 5 has occurred.\r\n\r\nAccess is denied.\r\n"),
  );
  assert(denied instanceof NotElevatedError);
  assertEquals(denied.message, NOT_ELEVATED_MESSAGE);
  assertEquals(
    NOT_ELEVATED_MESSAGE,
    "xvpn connect needs an elevated prompt on Windows (Run as administrator)",
  );
  // German Windows: the same exit code, another text.
  assert(notElevatedError(result(2, "", "Systemfehler 5 aufgetreten.\r\n\r\nZugriff verweigert.")));
  // The Server service is stopped: net session fails elevated or not, so it proves nothing.
  const stopped = "System error 2114 has occurred.\r\n\r\nThe Server service is not started.";
  assertEquals(notElevatedError(result(2, "", stopped)), undefined);
  assertEquals(notElevatedError(result(-1, "")), undefined);
  assert(isElevationRefusal("The requested operation requires elevation (Run as administrator)."));
  assert(!isElevationRefusal("Element not found."));
});

Deno.test("checkElevated() runs net session and throws the clear error", async () => {
  const denied = new RecordingRunner(() => result(2, "", "System error 5 has occurred."));
  await assertRejects(() => checkElevated(denied), NotElevatedError, "Run as administrator");
  assertEquals(denied.calls, [[...ELEVATION_PROBE]]);
  await checkElevated(new RecordingRunner());
  // `net` missing (ProcessRunner throws code -1 even with allowFailure): let through.
  await checkElevated({
    run: (argv) => Promise.reject(new CommandError(argv, -1, "not found")),
  });
});

Deno.test("stateDirFor() is %ProgramData%\\xvpn on Windows and /run/xvpn elsewhere", async () => {
  assertEquals(stateDirFor("linux", () => "D:\\Data"), "/run/xvpn");
  assertEquals(stateDirFor("windows", () => "D:\\Data"), "D:\\Data\\xvpn");
  assertEquals(stateDirFor("windows", () => undefined), "C:\\ProgramData\\xvpn");
  const none = () => Promise.resolve(undefined);
  assertEquals(
    await statePath("C:\\ProgramData\\xvpn", "xvpn0", "state.json", none, "windows"),
    "C:\\ProgramData\\xvpn\\xvpn0.state.json",
  );
  assertEquals(
    await statePath("/run/xvpn", "xvpn0", "lock", none, "linux"),
    "/run/xvpn/xvpn0.lock",
  );
});
