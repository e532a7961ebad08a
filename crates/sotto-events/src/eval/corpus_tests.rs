//! Checks the training and evaluation corpus, `eval/corpus/events.jsonl`: every event parses
//! as labelled, families keep one label, and the counts meet the corpus's minimums.
