from .clip_tokenizer import CLIPBPETokenizer, tokenize

__all__ = ['CLIPBPETokenizer', 'tokenize']
