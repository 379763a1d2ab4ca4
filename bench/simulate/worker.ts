/// <reference lib="deno.worker" />
// One region per worker (bench/simulate/main.ts): the parameters in, the result out.
import { type SimParams, simulateRegion } from "./region.ts";

self.onmessage = (e: MessageEvent<SimParams>) => {
  self.postMessage(simulateRegion(e.data));
};
