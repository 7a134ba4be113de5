/**
 * A small process-wide pool of page-aligned memory blocks, for writing large downloads with
 * O_DIRECT (blob-writer.ts).
 *
 * Why O_DIRECT: on the VMs kit runs on, a fresh page-cache page costs the first touch of guest
 * memory, which the hypervisor may have taken back (virtio-balloon free page reporting hands
 * free pages back to the host about two seconds after they are freed): writing 2 GiB through
 * the page cache measured 0.7 s of kernel time with warm pages and 8.8-9.3 s with cold ones.
 * O_DIRECT from the same few reused blocks never touches new memory (2 GiB in 1.7 s), and a
 * 100 GB pull no longer evicts everything else from the page cache.
 *
 * O_DIRECT needs aligned addresses; Node gives no aligned Buffer, but the memory of a
 * WebAssembly.Memory is page-aligned. (A shared one would let a worker thread hash the blocks,
 * but V8 copies into shared memory with relaxed atomics: 0.85 s of the receiving thread per
 * 2 GiB, and with the worker's own memory the pull was no faster on 2 cores.)
 */

/** O_DIRECT alignment (file offsets, lengths and addresses); 4 KiB suits 512 B and 4 KiB sector disks. */
export const ALIGN = 4096;
export const BLOCK_SIZE = 2 * 1024 * 1024;
/** 16 MiB in all, whatever the number of blobs in flight. */
const BLOCK_COUNT = 8;
const WASM_PAGE = 64 * 1024;

let free: Buffer[] | undefined;
const waiting: Array<(b: Buffer) => void> = [];

function pool(): Buffer[] {
  if (!free) {
    const memory = new WebAssembly.Memory({ initial: (BLOCK_SIZE * BLOCK_COUNT) / WASM_PAGE }).buffer;
    free = Array.from({ length: BLOCK_COUNT }, (_, i) => Buffer.from(memory, i * BLOCK_SIZE, BLOCK_SIZE));
  }
  return free;
}

/** A free block (BLOCK_SIZE bytes, page-aligned), or undefined when all are in use. */
export function tryTakeBlock(): Buffer | undefined {
  const blocks = pool();
  return waiting.length === 0 ? blocks.pop() : undefined;
}

/** A free block; waits for one when all are in use. */
export function takeBlock(): Promise<Buffer> {
  const b = tryTakeBlock();
  if (b) return Promise.resolve(b);
  return new Promise((resolve) => waiting.push(resolve));
}

export function giveBlock(b: Buffer): void {
  const next = waiting.shift();
  if (next) next(b);
  else pool().push(b);
}

/** KIT_DIRECT_IO=0 sends large blob reads and writes through the page cache (a file system that takes O_DIRECT but does it badly). */
export function directIoWanted(): boolean {
  return process.env.KIT_DIRECT_IO !== '0';
}

export const alignDown = (n: number): number => n - (n % ALIGN);
export const alignUp = (n: number): number => alignDown(n + ALIGN - 1);
