// A process that listens like `train` does (cli/interrupt.ts) and is otherwise idle, as the
// main thread is while it awaits the GPU or a file write: tests/cli/interrupt_test.ts signals it.
// Prints "ready", then "stop <signal>" at each stop request seen, and exits 0 after 2.5 seconds.

import { Interrupts } from "../../cli/interrupt.ts";

const interrupts = await Interrupts.start(false);
interrupts.signal.addEventListener("abort", () => console.log(`stop ${interrupts.signal.reason}`));
console.log("ready");
await new Promise((r) => setTimeout(r, 2500));
interrupts.close();
