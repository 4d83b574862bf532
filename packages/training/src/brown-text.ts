import { encodeBytes, IMAGINATIVE_CATEGORIES, INFORMATIVE_CATEGORIES, readBrownCorpus, splitByCategory } from './brown.js';
import type { TextSplit } from './language-model.js';

/** Which half of the Brown corpus: the informative prose (pretraining) or the imaginative prose (the fine-tune's domain). */
export type BrownDomain = 'informative' | 'imaginative';

/**
 * The byte streams of one half of the Brown corpus: every training document's text, in id order,
 * one after another; the last document of each category held out as the validation stream.
 */
export function brownText(domain: BrownDomain): TextSplit & { trainDocuments: number; validationDocuments: string[] } {
  const categories = domain === 'informative' ? INFORMATIVE_CATEGORIES : IMAGINATIVE_CATEGORIES;
  const { train, validation } = splitByCategory(readBrownCorpus(), categories);
  return {
    train: encodeBytes(train.map((d) => d.text).join('\n')),
    validation: encodeBytes(validation.map((d) => d.text).join('\n')),
    trainDocuments: train.length,
    validationDocuments: validation.map((d) => d.id),
  };
}
