// Scratch textures for staged launches (WgslLaunch.stages): 2-D array textures recycled by
// exact size and format. A launch takes one per staged input, a copy or a fill kernel writes
// it, the launch's main kernel reads it, and it goes back to the pool as soon as both are recorded:
// WebGPU orders dispatches on one queue, so a later stage that refills it runs after this
// launch's reads (the same argument as the buffer pool's).

/** A pooled texture with the one view kernels bind (its identity keys cached bind groups). */
export interface ScratchTexture {
  texture: GPUTexture;
  view: GPUTextureView;
  bytes: number;
}

/** Counters of the texture pool. */
export interface TextureStats {
  /** Bytes of every texture the pool holds, in use or free. */
  textureBytes: number;
  /** Textures created. */
  textureAllocations: number;
}

/** Free textures kept for reuse at most (bytes); older ones beyond it are destroyed. Without a
 * bound the pool would keep a texture per operand shape ever staged: another copy of a big
 * model's weights. */
export const MAX_POOLED_TEXTURE_BYTES = 256 * 1024 * 1024;

import type { StageFormat } from "../backend.ts";

/** Bytes of one texel. */
const TEXEL: Record<StageFormat, number> = { rgba32float: 16, rgba32uint: 16, r32uint: 4 };

/** Scratch textures recycled by (width, height, layers). */
export class TexturePool {
  readonly stats: TextureStats = { textureBytes: 0, textureAllocations: 0 };
  /** Free textures by size key, in the order they were released (a Map keeps insertion order:
   * its first entries are the least recently used). */
  #free = new Map<string, ScratchTexture[]>();
  #freeBytes = 0;
  /** Evicted textures not yet destroyed: recorded work may still use them (see `retire`). */
  #retired: ScratchTexture[] = [];

  constructor(readonly device: GPUDevice, readonly maxPooledBytes = MAX_POOLED_TEXTURE_BYTES) {}

  /** A texture of exactly this size and format (contents unspecified). */
  acquire(
    width: number,
    height: number,
    layers: number,
    format: StageFormat = "rgba32float",
  ): ScratchTexture {
    const key = `${width}x${height}x${layers}|${format}`;
    const list = this.#free.get(key);
    const hit = list?.pop();
    if (hit) {
      if (list!.length === 0) this.#free.delete(key);
      this.#freeBytes -= hit.bytes;
      return hit;
    }
    const texture = this.device.createTexture({
      size: [width, height, layers],
      format,
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
    const view = texture.createView({ dimension: "2d-array" });
    const bytes = width * height * layers * TEXEL[format];
    this.stats.textureBytes += bytes;
    this.stats.textureAllocations++;
    return { texture, view, bytes };
  }

  /**
   * Return a texture from `acquire` (work already recorded that reads it still does). Free
   * textures over `maxPooledBytes`, least recently used first, are set aside for `retire`.
   */
  release(t: ScratchTexture): void {
    const { width, height, depthOrArrayLayers, format } = t.texture;
    const key = `${width}x${height}x${depthOrArrayLayers}|${format}`;
    const list = this.#free.get(key) ?? [];
    this.#free.delete(key); // re-inserted last: most recently used
    this.#free.set(key, [...list, t]);
    this.#freeBytes += t.bytes;
    for (const [k, ts] of this.#free) {
      if (this.#freeBytes <= this.maxPooledBytes) break;
      this.#free.delete(k);
      for (const old of ts) {
        this.#freeBytes -= old.bytes;
        this.#retired.push(old);
      }
    }
  }

  /** Are evicted textures waiting for `retire`? */
  get hasRetired(): boolean {
    return this.#retired.length > 0;
  }

  /** Destroy evicted textures; call only once all recorded work that used them is submitted. */
  retire(): void {
    for (const t of this.#retired) {
      t.texture.destroy();
      this.stats.textureBytes -= t.bytes;
    }
    this.#retired = [];
  }

  /** Destroy every free texture (after submitting work that may use them). */
  trim(): void {
    for (const list of this.#free.values()) this.#retired.push(...list);
    this.#free.clear();
    this.#freeBytes = 0;
    this.retire();
  }
}
