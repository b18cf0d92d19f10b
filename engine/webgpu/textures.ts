// Scratch textures for staged launches (WgslLaunch.stages): rgba32float 2-D array textures,
// recycled by exact size. A launch takes one per staged input, a copy or a fill kernel writes
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

/** Bytes of one rgba32float texel. */
const TEXEL = 16;

/** Scratch textures recycled by (width, height, layers). */
export class TexturePool {
  readonly stats: TextureStats = { textureBytes: 0, textureAllocations: 0 };
  #free = new Map<string, ScratchTexture[]>();

  constructor(readonly device: GPUDevice) {}

  /** A texture of exactly this size (contents unspecified). */
  acquire(width: number, height: number, layers: number): ScratchTexture {
    const hit = this.#free.get(`${width}x${height}x${layers}`)?.pop();
    if (hit) return hit;
    const texture = this.device.createTexture({
      size: [width, height, layers],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
    const view = texture.createView({ dimension: "2d-array" });
    const bytes = width * height * layers * TEXEL;
    this.stats.textureBytes += bytes;
    this.stats.textureAllocations++;
    return { texture, view, bytes };
  }

  /** Return a texture from `acquire` (work already recorded that reads it still does). */
  release(t: ScratchTexture): void {
    const { width, height, depthOrArrayLayers } = t.texture;
    const key = `${width}x${height}x${depthOrArrayLayers}`;
    const list = this.#free.get(key);
    if (list) list.push(t);
    else this.#free.set(key, [t]);
  }

  /** Destroy every free texture. */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const t of list) {
        t.texture.destroy();
        this.stats.textureBytes -= t.bytes;
      }
    }
    this.#free.clear();
  }
}
