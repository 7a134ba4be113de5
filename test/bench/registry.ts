/**
 * The real registry (the integration harness's docker-registry on 127.0.0.1), plus the CPU time
 * it has used so far, read from /proc, so that a case can say how much of the machine the
 * server side took.
 */
import { readFileSync } from 'node:fs';
import { startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';

export interface BenchRegistry {
  host: string;
  /** Seconds of CPU (user + sys) the registry process has used since it started. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

function processCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

export async function startBenchRegistry(): Promise<BenchRegistry> {
  const reg: RunningRegistry = await startRegistry();
  // The harness's watchdog writes the registry's pid next to its log file.
  let pid = Number.NaN;
  try {
    pid = Number(readFileSync(reg.logFile.replace(/\.log$/, '.pid'), 'utf8').trim());
  } catch {
    // CPU accounting unavailable: cpuSeconds() is NaN
  }
  return { host: reg.host, cpuSeconds: () => processCpu(pid), stop: () => reg.stop() };
}
