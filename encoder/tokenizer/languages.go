package tokenizer

import (
	"fmt"
	"strings"
)

// languageCodes are Whisper's language codes in token order (openai/whisper
// tokenizer.py, LANGUAGES): token sot+1+k is language k. Models with 99
// languages use the first 99; large-v3 adds "yue".
var languageCodes = [...]string{
	"en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr",
	"pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi",
	"he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
	"th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk",
	"te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk",
	"br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
	"gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
	"ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
	"ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
	"mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
}

// languageNames are the English names, index for index with languageCodes.
var languageNames = [...]string{
	"english", "chinese", "german", "spanish", "russian", "korean", "french", "japanese", "portuguese", "turkish",
	"polish", "catalan", "dutch", "arabic", "swedish", "italian", "indonesian", "hindi", "finnish", "vietnamese",
	"hebrew", "ukrainian", "greek", "malay", "czech", "romanian", "danish", "hungarian", "tamil", "norwegian",
	"thai", "urdu", "croatian", "bulgarian", "lithuanian", "latin", "maori", "malayalam", "welsh", "slovak",
	"telugu", "persian", "latvian", "bengali", "serbian", "azerbaijani", "slovenian", "kannada", "estonian", "macedonian",
	"breton", "basque", "icelandic", "armenian", "nepali", "mongolian", "bosnian", "kazakh", "albanian", "swahili",
	"galician", "marathi", "punjabi", "sinhala", "khmer", "shona", "yoruba", "somali", "afrikaans", "occitan",
	"georgian", "belarusian", "tajik", "sindhi", "gujarati", "amharic", "yiddish", "lao", "uzbek", "faroese",
	"haitian creole", "pashto", "turkmen", "nynorsk", "maltese", "sanskrit", "luxembourgish", "myanmar", "tibetan", "tagalog",
	"malagasy", "assamese", "tatar", "hawaiian", "lingala", "hausa", "bashkir", "javanese", "sundanese", "cantonese",
}

// languageAliases are the other names Whisper accepts (TO_LANGUAGE_CODE).
var languageAliases = map[string]string{
	"burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht",
	"letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
	"moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}

// MaxLanguages is the number of languages Whisper knows (large-v3 uses all).
const MaxLanguages = len(languageCodes)

// DefaultLanguages is the language count of every multilingual Whisper model
// before large-v3, and of the .en models' special-token layout.
const DefaultLanguages = 99

// languageIndex returns the token offset of a language code, or -1.
func languageIndex(code string) int {
	for i, c := range languageCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// LanguageCode normalises a language as Whisper's get_tokenizer does: a code
// ("en"), an English name ("English") or an alias ("Mandarin"), any case.
func LanguageCode(language string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(language))
	if languageIndex(l) >= 0 {
		return l, nil
	}
	for i, name := range languageNames {
		if name == l {
			return languageCodes[i], nil
		}
	}
	if code, ok := languageAliases[l]; ok {
		return code, nil
	}
	return "", fmt.Errorf("unsupported language %q (want one of Whisper's %d codes, e.g. \"en\", or an English name)", language, MaxLanguages)
}

// LanguageName returns the English name of a language code ("en" → "english").
func LanguageName(code string) (string, bool) {
	if i := languageIndex(code); i >= 0 {
		return languageNames[i], true
	}
	return "", false
}
