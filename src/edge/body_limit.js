// Counts a request body as it streams to the origin and cuts it before it passes a
// limit (the `max_body_bytes` policy; the rule is `Counter` in src/policy/body_limit).
// A chunk that would take the body past `max` is never enqueued: the stream errors
// instead, which aborts the upload, so the origin never receives the body whole.
export class BodyLimit {
  constructor(max) {
    this.max = max;
    this.seen = 0;
    this.exceeded = false;
  }

  wrap(stream) {
    return stream.pipeThrough(
      new TransformStream({
        transform: (chunk, controller) => {
          this.seen += chunk.byteLength;
          if (this.seen > this.max) {
            this.exceeded = true;
            controller.error(new RangeError('request body larger than max_body_bytes'));
          } else {
            controller.enqueue(chunk);
          }
        },
      }),
    );
  }
}
