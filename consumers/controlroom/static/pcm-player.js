// AudioWorklet: plays interleaved stereo float PCM posted by the page, reports level and progress.
// It waits for `prebuffer` seconds before starting (the composer sends music a beat at a time, in
// bursts as emotion windows arrive) and never lets the buffer grow past `maxBuffer` seconds, so
// what is heard stays near "now" even when the music arrives faster than real time (a backlog).
class PcmPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.capacity = Math.ceil(sampleRate * 12);
    this.left = new Float32Array(this.capacity);
    this.right = new Float32Array(this.capacity);
    this.read = 0; this.write = 0; this.size = 0;
    this.prebuffer = Math.round(sampleRate * (opts.prebuffer || 1.0));
    this.maxBuffer = Math.round(sampleRate * (opts.maxBuffer || 4.0));
    this.started = false; this.played = 0; this.received = 0; this.underruns = 0;
    this.sumSquares = 0; this.peak = 0; this.counted = 0;
    this.port.onmessage = (event) => this.push(event.data);
  }

  push(interleaved) {
    const frames = interleaved.length >> 1;
    for (let i = 0; i < frames; i++) {
      this.left[this.write] = interleaved[2 * i];
      this.right[this.write] = interleaved[2 * i + 1];
      this.write = (this.write + 1) % this.capacity;
      if (this.size < this.capacity) this.size++; else this.read = (this.read + 1) % this.capacity;
    }
    this.received += frames;
    if (this.size > this.maxBuffer) {  // behind "now": skip ahead to one prebuffer of latency
      const skip = this.size - this.prebuffer;
      this.read = (this.read + skip) % this.capacity;
      this.size -= skip;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const n = out[0].length;
    if (!this.started && this.size >= this.prebuffer) this.started = true;
    for (let i = 0; i < n; i++) {
      let l = 0, r = 0;
      if (this.started && this.size > 0) {
        l = this.left[this.read]; r = this.right[this.read];
        this.read = (this.read + 1) % this.capacity; this.size--; this.played++;
      } else if (this.started) {
        this.underruns++; this.started = false;  // wait for a new prebuffer rather than stutter
      }
      out[0][i] = l; if (out[1]) out[1][i] = r;
      const m = Math.max(Math.abs(l), Math.abs(r));
      this.sumSquares += (l * l + r * r) / 2; if (m > this.peak) this.peak = m;
    }
    this.counted += n;
    if (this.counted >= sampleRate / 10) {
      this.port.postMessage({ rms: Math.sqrt(this.sumSquares / this.counted), peak: this.peak, played: this.played,
                              received: this.received, buffered: this.size / sampleRate, underruns: this.underruns });
      this.sumSquares = 0; this.peak = 0; this.counted = 0;
    }
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayer);
