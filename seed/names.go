package seed

// The word lists the generator draws Italian-sounding names from. They are
// data, never modified.

// province is one plain province of the regions table: its sigla (which
// prefixes market codes), its capoluogo and the capoluogo's three-digit
// serial inside the province (the ISTAT one as far as this table knows; the
// other comuni of a province are synthetic).
type province struct {
	sigla     string
	capoluogo string
	serial    int
}

// provinceTable is keyed by the three-digit plain province code.
var provinceTable = map[string]province{
	"001": {"TO", "Torino", 272}, "002": {"VC", "Vercelli", 158}, "003": {"NO", "Novara", 106},
	"004": {"CN", "Cuneo", 78}, "005": {"AT", "Asti", 5}, "006": {"AL", "Alessandria", 3},
	"007": {"AO", "Aosta", 3}, "008": {"IM", "Imperia", 31}, "009": {"SV", "Savona", 56},
	"010": {"GE", "Genova", 25}, "011": {"SP", "La Spezia", 15}, "012": {"VA", "Varese", 133},
	"013": {"CO", "Como", 75}, "014": {"SO", "Sondrio", 61}, "015": {"MI", "Milano", 146},
	"016": {"BG", "Bergamo", 24}, "017": {"BS", "Brescia", 29}, "018": {"PV", "Pavia", 110},
	"019": {"CR", "Cremona", 36}, "020": {"MN", "Mantova", 30}, "021": {"BZ", "Bolzano", 8},
	"022": {"TN", "Trento", 205}, "023": {"VR", "Verona", 91}, "024": {"VI", "Vicenza", 116},
	"025": {"BL", "Belluno", 6}, "026": {"TV", "Treviso", 86}, "027": {"VE", "Venezia", 42},
	"028": {"PD", "Padova", 60}, "029": {"RO", "Rovigo", 41}, "030": {"UD", "Udine", 129},
	"031": {"GO", "Gorizia", 7}, "032": {"TS", "Trieste", 6}, "033": {"PC", "Piacenza", 32},
	"034": {"PR", "Parma", 27}, "035": {"RE", "Reggio nell'Emilia", 33}, "036": {"MO", "Modena", 23},
	"037": {"BO", "Bologna", 6}, "038": {"FE", "Ferrara", 8}, "039": {"RA", "Ravenna", 14},
	"040": {"FC", "Forlì", 12}, "041": {"PU", "Pesaro", 44}, "042": {"AN", "Ancona", 2},
	"043": {"MC", "Macerata", 23}, "044": {"AP", "Ascoli Piceno", 7}, "045": {"MS", "Massa", 10},
	"046": {"LU", "Lucca", 17}, "047": {"PT", "Pistoia", 14}, "048": {"FI", "Firenze", 17},
	"049": {"LI", "Livorno", 9}, "050": {"PI", "Pisa", 26}, "051": {"AR", "Arezzo", 2},
	"052": {"SI", "Siena", 32}, "053": {"GR", "Grosseto", 11}, "054": {"PG", "Perugia", 39},
	"055": {"TR", "Terni", 32}, "056": {"VT", "Viterbo", 59}, "057": {"RI", "Rieti", 59},
	"058": {"RM", "Roma", 91}, "059": {"LT", "Latina", 11}, "060": {"FR", "Frosinone", 38},
	"061": {"CE", "Caserta", 22}, "062": {"BN", "Benevento", 8}, "063": {"NA", "Napoli", 49},
	"064": {"AV", "Avellino", 8}, "065": {"SA", "Salerno", 116}, "066": {"AQ", "L'Aquila", 49},
	"067": {"TE", "Teramo", 41}, "068": {"PE", "Pescara", 28}, "069": {"CH", "Chieti", 22},
	"070": {"CB", "Campobasso", 6}, "071": {"FG", "Foggia", 24}, "072": {"BA", "Bari", 6},
	"073": {"TA", "Taranto", 27}, "074": {"BR", "Brindisi", 1}, "075": {"LE", "Lecce", 35},
	"076": {"PZ", "Potenza", 63}, "077": {"MT", "Matera", 14}, "078": {"CS", "Cosenza", 45},
	"079": {"CZ", "Catanzaro", 23}, "080": {"RC", "Reggio di Calabria", 63}, "081": {"TP", "Trapani", 21},
	"082": {"PA", "Palermo", 53}, "083": {"ME", "Messina", 48}, "084": {"AG", "Agrigento", 1},
	"085": {"CL", "Caltanissetta", 4}, "086": {"EN", "Enna", 9}, "087": {"CT", "Catania", 15},
	"088": {"RG", "Ragusa", 9}, "089": {"SR", "Siracusa", 17}, "090": {"SS", "Sassari", 64},
	"091": {"NU", "Nuoro", 51}, "092": {"CA", "Cagliari", 9}, "093": {"PN", "Pordenone", 33},
	"094": {"IS", "Isernia", 23}, "095": {"OR", "Oristano", 38}, "096": {"BI", "Biella", 4},
	"097": {"LC", "Lecco", 42}, "098": {"LO", "Lodi", 31}, "099": {"RN", "Rimini", 14},
	"100": {"PO", "Prato", 5}, "101": {"KR", "Crotone", 10}, "102": {"VV", "Vibo Valentia", 47},
	"103": {"VB", "Verbania", 72}, "108": {"MB", "Monza", 33}, "109": {"FM", "Fermo", 6},
	"110": {"BT", "Barletta", 2}, "111": {"SU", "Carbonia", 9},
}

// famousMarkets are well-known markets of big cities, used as the names of
// the first markets generated in their capoluogo.
var famousMarkets = map[string][]string{
	"Torino":   {"Mercato di Porta Palazzo", "Mercato della Crocetta", "Mercato di Piazza Madama Cristina", "Mercato di Corso Racconigi"},
	"Milano":   {"Mercato di Via Papiniano", "Mercato di Viale Santa Croce", "Mercato di Via Fauché", "Mercato di Viale Ungheria"},
	"Genova":   {"Mercato Orientale", "Mercato di Piazza Palermo"},
	"Venezia":  {"Mercato di Rialto", "Mercato di Via Fapanni"},
	"Bologna":  {"Mercato della Piazzola", "Mercato delle Erbe"},
	"Firenze":  {"Mercato di San Lorenzo", "Mercato di Sant'Ambrogio", "Mercato delle Cascine"},
	"Roma":     {"Mercato di Porta Portese", "Mercato di Campo de' Fiori", "Mercato di Testaccio", "Mercato di Piazza Vittorio", "Mercato Trionfale"},
	"Napoli":   {"Mercato di Porta Nolana", "Mercato della Pignasecca", "Mercato di Poggioreale"},
	"Bari":     {"Mercato di Santa Scolastica", "Mercato di Via Nicolai"},
	"Palermo":  {"Mercato di Ballarò", "Mercato della Vucciria", "Mercato del Capo"},
	"Catania":  {"Fera 'o Luni", "Mercato della Pescheria"},
	"Cagliari": {"Mercato di San Benedetto"},
}

var squares = []string{
	"Garibaldi", "Mazzini", "Cavour", "Vittorio Emanuele II", "Dante", "Matteotti",
	"della Repubblica", "del Popolo", "XX Settembre", "IV Novembre", "San Francesco",
	"del Duomo", "della Libertà", "Risorgimento", "Roma", "Umberto I", "Marconi", "Verdi",
	"Gramsci", "Aldo Moro", "della Vittoria", "del Mercato", "Castello", "San Marco",
	"Italia", "dell'Unità", "Indipendenza", "Cairoli", "dei Martiri", "Buozzi",
	"Santa Maria", "Carducci", "Manzoni", "Leopardi", "De Gasperi", "Kennedy",
}

var squareKinds = []string{"Mercato di Piazza ", "Mercato rionale di Via ", "Mercato di Largo ", "Mercato di Viale "}

var comunePrefixes = []string{
	"Castel", "Monte", "Villa", "Borgo", "Rocca", "Poggio", "Torre", "Casal", "Colle",
	"Pieve", "Ponte", "Serra", "Fonte", "Valle", "Campo", "Porto", "Sasso", "Castiglion",
}

var comuneRoots = []string{
	"nuovo", "vecchio", "franco", "bello", "forte", "rotondo", "fiorito", "alto", "marino",
	"verde", "chiaro", "lungo", "grande", "secco", "rosso", "santo", "piano", "fiore",
}

var comuneSaints = []string{
	"San Martino", "San Giorgio", "Sant'Angelo", "Santa Maria", "San Pietro", "San Giovanni",
	"San Lorenzo", "San Vito", "Santo Stefano", "San Michele", "Sant'Andrea", "San Nicola",
	"San Biagio", "San Donato", "San Benedetto", "Santa Croce", "San Felice", "San Marco",
}

var comuneStems = []string{
	"Carp", "Bagn", "Calv", "Cerv", "Gall", "Mar", "Nov", "Lav", "Orb", "Sal", "Ter",
	"Vign", "Trev", "Bors", "Cast", "Fagn", "Grum", "Mass", "Pont", "Sorb", "Cand", "Lur",
}

var comuneEndings = []string{
	"ano", "ello", "ina", "ate", "ago", "engo", "iglio", "one", "ara", "ola", "eto",
	"asco", "ino", "ore", "ella", "ignano", "ezzo",
}

var comuneQualifiers = []string{
	" di Sopra", " di Sotto", " Terme", " Superiore", " Inferiore", " Scalo", " in Colle",
	" del Monte", " al Piano", " Marina", " Alta",
}

var surnames = []string{
	"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
	"Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa",
	"Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro",
	"Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone", "Longo",
	"Gentile", "Martinelli", "Vitale", "Lombardo", "Serra", "Coppola", "De Santis",
	"D'Angelo", "Marchetti", "Parisi", "Villa", "Conte", "Ferraro", "Ferri", "Fabbri",
	"Bianco", "Marini", "Grasso", "Valentini", "Messina", "Sala", "De Angelis", "Gatti",
	"Pellegrini", "Palumbo", "Sanna", "Farina", "Rizzi", "Monti", "Cattaneo", "Morelli",
	"Amato", "Silvestri", "Mazza", "Testa", "Grassi", "Pellegrino", "Carbone",
	"Giuliani", "Benedetti", "Barone", "Rossetti", "Caputo", "Montanari", "Guerra",
	"Palmieri", "Bernardi", "Martino", "Fiore", "De Rosa", "Ferretti", "Bellini",
	"Basile", "Riva", "Donati", "Piras", "Vitali", "Battaglia", "Sartori", "Neri",
	"Costantini", "Milani", "Pagano", "Ruggiero", "Sorrentino", "D'Amico", "Orlando",
	"Negri", "Mele", "Cirillo", "Pace", "Longhi", "Zanetti", "Bonetti", "Fumagalli",
}

var maleNames = []string{
	"Giuseppe", "Giovanni", "Antonio", "Mario", "Luigi", "Francesco", "Angelo",
	"Vincenzo", "Pietro", "Salvatore", "Carlo", "Franco", "Domenico", "Bruno", "Paolo",
	"Michele", "Giorgio", "Aldo", "Sergio", "Luciano", "Stefano", "Marco", "Andrea",
	"Roberto", "Alessandro", "Massimo", "Davide", "Matteo", "Lorenzo", "Simone",
	"Fabio", "Claudio", "Gianni", "Enzo", "Nicola", "Raffaele", "Gennaro", "Ciro",
}

var femaleNames = []string{
	"Maria", "Anna", "Giuseppina", "Rosa", "Angela", "Giovanna", "Teresa", "Lucia",
	"Carmela", "Caterina", "Francesca", "Antonella", "Paola", "Laura", "Giulia",
	"Sara", "Chiara", "Elena", "Silvia", "Valentina", "Federica", "Alessandra",
	"Roberta", "Monica", "Barbara", "Patrizia", "Daniela", "Simona", "Marta", "Rita",
}

var goods = []string{
	"Frutta e Verdura", "Abbigliamento", "Calzature", "Alimentari", "Formaggi",
	"Salumi", "Casalinghi", "Fiori e Piante", "Pesce Fresco", "Tessuti", "Pelletteria",
	"Biancheria", "Ortofrutta", "Dolciumi", "Bigiotteria", "Merceria", "Olio e Vino",
	"Porchetta", "Prodotti Tipici", "Accessori Moda",
}

var companyForms = []string{" S.n.c.", " S.r.l.", " S.a.s.", " S.r.l.s.", " Soc. Coop."}
