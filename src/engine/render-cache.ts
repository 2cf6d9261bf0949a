import { createHash } from 'node:crypto';
import { appsFileOf, collectClusterInputs } from '../source/cluster-inputs.ts';
import { digestInputs } from '../source/input-digest.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import type { AppRender, AppRenderCache, TargetCluster } from './render-apps.ts';
import { type RenderOptions, type RenderResult, renderCluster } from './render-cluster.ts';

export interface RenderCache {
  render(treeDir: string, clusterPath: string, target?: TargetCluster): Promise<RenderResult>;
  readonly stats: { hits: number; misses: number; appHits: number; appMisses: number };
}

/**
 * Renders keyed by the content of every file the render reads (not by commit): a commit that changes
 * nothing a cluster reads — or two clusters sharing a folder — reuse one render. A cluster of apps is
 * keyed by its plumbline.yaml, what every app reads and the cluster's APIs (`.Capabilities`); when it
 * must render again, each app whose own inputs did not change comes from a second cache, so a push to
 * one app's values renders that app alone. Least recently used entries are dropped past `maxEntries`.
 */
export function createRenderCache(options: RenderOptions, maxEntries = 64): RenderCache {
  const clusters = new LruMap<RenderResult>(maxEntries);
  const apps = new LruMap<AppRender>(maxEntries * 16);
  const stats = { hits: 0, misses: 0, appHits: 0, appMisses: 0 };
  const appCache: AppRenderCache = {
    async get(key, render) {
      const cached = apps.get(key);
      if (cached) {
        stats.appHits += 1;
        return cached;
      }
      stats.appMisses += 1;
      const result = await render();
      if (result.ok || !result.transient) apps.set(key, result);
      return result;
    },
  };
  const withApps: RenderOptions = { ...options, appCache };
  return {
    stats,
    async render(treeDir, clusterPath, target) {
      const key = await clusterKey(treeDir, clusterPath, options, target);
      const cached = clusters.get(key);
      if (cached) {
        stats.hits += 1;
        return cached;
      }
      stats.misses += 1;
      const result = await renderCluster(treeDir, clusterPath, withApps, target);
      if (!result.ok && result.transient) return result;
      clusters.set(key, result);
      return result;
    },
  };
}

async function clusterKey(
  treeDir: string,
  clusterPath: string,
  options: RenderOptions,
  target: TargetCluster | undefined,
): Promise<string> {
  const tree = fsTreeReader(treeDir);
  const inputs = await collectClusterInputs(tree, clusterPath);
  const hash = createHash('sha256').update(`${options.kustomize.command}\0${clusterPath}\0`);
  // Only a cluster with apps can render charts, and only charts read the cluster's APIs.
  if (target && (await tree.fileSize?.(appsFileOf(clusterPath))) !== undefined) {
    const capabilities = await target.capabilities();
    hash.update(`${capabilities.kubeVersion}\0${capabilities.apiVersions.join(',')}\0`);
  }
  hash.update(await digestInputs(treeDir, inputs));
  return hash.digest('hex');
}

/** A map that forgets its least recently used entry past `max`. */
class LruMap<V> {
  private readonly entries = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    this.entries.set(key, value);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }
}
