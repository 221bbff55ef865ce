// Types of the sharp stand-in: the subset of sharp's API the README uses.
interface RawResult {
  data: Buffer;
  info: { width: number; height: number; channels: number };
}
interface Chain {
  removeAlpha(): Chain;
  raw(): Chain;
  toBuffer(opts: { resolveWithObject: true }): Promise<RawResult>;
  toBuffer(): Promise<Buffer>;
}
export default function sharp(file: string): Chain;
