/**
 * Runs tasks one at a time per lane; a task queued while another waits replaces it, since only the
 * newest state of a status matters (a `pending` not yet sent when the final one arrives is never sent).
 * Tasks handle their own errors: a task that throws ends its lane, and `idle` rejects with its error.
 */
export class LatestWins {
  private readonly lanes = new Map<string, { running: Promise<void>; next: (() => Promise<void>) | undefined }>();

  push(lane: string, task: () => Promise<void>): void {
    const current = this.lanes.get(lane);
    if (current) {
      current.next = task;
      return;
    }
    const state = { running: Promise.resolve(), next: task as (() => Promise<void>) | undefined };
    this.lanes.set(lane, state);
    state.running = this.drain(lane, state);
  }

  private async drain(lane: string, state: { next: (() => Promise<void>) | undefined }): Promise<void> {
    try {
      while (state.next) {
        const run = state.next;
        state.next = undefined;
        await run();
      }
    } finally {
      this.lanes.delete(lane);
    }
  }

  /** Resolves once every lane has run out of tasks, those queued meanwhile included. */
  async idle(): Promise<void> {
    while (this.lanes.size > 0) await Promise.all([...this.lanes.values()].map((l) => l.running));
  }
}
