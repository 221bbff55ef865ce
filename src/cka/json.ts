/**
 * The CKA matrix as JSON: values with their row and column labels, so a plot or a table elsewhere can be
 * rebuilt without this library.
 * @module
 */
import { InputError } from '../errors.js';
import { writeBytesAtomic } from '../io/atomicFile.js';

/**
 * What {@link ckaMatrixJSON} returns.
 * @category CKA
 */
export interface CKAMatrixJSON {
  format: 'diffssl.cka-matrix';
  version: 1;
  /** Row labels, one per row of `values`. */
  rows: string[];
  /** Column labels. */
  cols: string[];
  /** `values[i][j]` = CKA(row i, column j). */
  values: number[][];
  /** Whether the unbiased HSIC_1 estimator was used, when known. */
  debiased?: boolean;
  /** Examples the matrix was computed over, when known. */
  examples?: number;
}

/**
 * Options of {@link ckaMatrixJSON}.
 * @category CKA
 */
export interface CKAMatrixJSONOptions {
  /** Default "0", "1", …. */
  rowLabels?: readonly string[];
  /** Default: the row labels for a square matrix, else "0", "1", …. */
  colLabels?: readonly string[];
  debiased?: boolean;
  examples?: number;
}

/**
 * Checks that `matrix` is a non-empty rectangular array of finite numbers and returns its size.
 * @internal
 */
export function checkMatrix(matrix: readonly (readonly number[])[], where: string): { rows: number; cols: number } {
  if (!Array.isArray(matrix) || matrix.length === 0 || !Array.isArray(matrix[0]) || matrix[0].length === 0)
    throw new InputError(`${where}: the matrix must be a non-empty array of non-empty rows`);
  const cols = matrix[0].length;
  matrix.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== cols)
      throw new InputError(
        `${where}: row ${i} has ${Array.isArray(row) ? row.length : 'no'} entries, row 0 has ${cols}`,
      );
    row.forEach((v, j) => {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new InputError(`${where}: matrix[${i}][${j}] is ${String(v)}, not a finite number`);
    });
  });
  return { rows: matrix.length, cols };
}

/**
 * Row and column labels with their defaults, checked against the matrix size.
 * @internal
 */
export function resolveLabels(
  size: { rows: number; cols: number },
  rowLabels: readonly string[] | undefined,
  colLabels: readonly string[] | undefined,
  where: string,
): { rows: string[]; cols: string[] } {
  const pick = (given: readonly string[] | undefined, count: number, what: string) => {
    if (given === undefined) return Array.from({ length: count }, (_, i) => String(i));
    if (!Array.isArray(given) || given.length !== count)
      throw new InputError(
        `${where}: ${what} must be ${count} strings, got ${Array.isArray(given) ? given.length : typeof given}`,
      );
    return given.map(String);
  };
  const rows = pick(rowLabels, size.rows, 'rowLabels');
  const cols = colLabels === undefined && size.rows === size.cols ? rows : pick(colLabels, size.cols, 'colLabels');
  return { rows, cols };
}

/**
 * The matrix and its labels as a plain object (`JSON.stringify` it).
 * @throws InputError for a ragged or non-finite matrix or labels of the wrong length.
 * @category CKA
 */
export function ckaMatrixJSON(matrix: readonly (readonly number[])[], opts: CKAMatrixJSONOptions = {}): CKAMatrixJSON {
  const size = checkMatrix(matrix, 'ckaMatrixJSON');
  const { rows, cols } = resolveLabels(size, opts.rowLabels, opts.colLabels, 'ckaMatrixJSON');
  const out: CKAMatrixJSON = {
    format: 'diffssl.cka-matrix',
    version: 1,
    rows,
    cols,
    values: matrix.map((r) => [...r]),
  };
  if (opts.debiased !== undefined) out.debiased = opts.debiased;
  if (opts.examples !== undefined) out.examples = opts.examples;
  return out;
}

/**
 * Writes {@link ckaMatrixJSON} to a file, atomically (Node).
 * @category CKA
 */
export async function writeCKAJSON(
  path: string,
  matrix: readonly (readonly number[])[],
  opts: CKAMatrixJSONOptions = {},
): Promise<void> {
  const text = `${JSON.stringify(ckaMatrixJSON(matrix, opts), null, 1)}\n`;
  if (typeof path !== 'string' || path === '') throw new InputError('writeCKAJSON needs a non-empty file path');
  await writeBytesAtomic(path, text);
}
