package seed

// The word lists the generator draws Italian-sounding names from. They are
// data, never modified.

// province is one plain province of the regions table: its sigla, which
// prefixes market codes, and the ISTAT serial of its capoluogo inside the
// province. The comuni themselves, with their names, come from package regions.
type province struct {
	sigla  string
	serial int
}

// provinceTable is keyed by the three-digit plain province code.
var provinceTable = map[string]province{
	"001": {"TO", 272}, "002": {"VC", 158}, "003": {"NO", 106}, "004": {"CN", 78}, "005": {"AT", 5},
	"006": {"AL", 3}, "007": {"AO", 3}, "008": {"IM", 31}, "009": {"SV", 56}, "010": {"GE", 25},
	"011": {"SP", 15}, "012": {"VA", 133}, "013": {"CO", 75}, "014": {"SO", 61}, "015": {"MI", 146},
	"016": {"BG", 24}, "017": {"BS", 29}, "018": {"PV", 110}, "019": {"CR", 36}, "020": {"MN", 30},
	"021": {"BZ", 8}, "022": {"TN", 205}, "023": {"VR", 91}, "024": {"VI", 116}, "025": {"BL", 6},
	"026": {"TV", 86}, "027": {"VE", 42}, "028": {"PD", 60}, "029": {"RO", 41}, "030": {"UD", 129},
	"031": {"GO", 7}, "032": {"TS", 6}, "033": {"PC", 32}, "034": {"PR", 27}, "035": {"RE", 33},
	"036": {"MO", 23}, "037": {"BO", 6}, "038": {"FE", 8}, "039": {"RA", 14}, "040": {"FC", 12},
	"041": {"PU", 44}, "042": {"AN", 2}, "043": {"MC", 23}, "044": {"AP", 7}, "045": {"MS", 10},
	"046": {"LU", 17}, "047": {"PT", 14}, "048": {"FI", 17}, "049": {"LI", 9}, "050": {"PI", 26},
	"051": {"AR", 2}, "052": {"SI", 32}, "053": {"GR", 11}, "054": {"PG", 39}, "055": {"TR", 32},
	"056": {"VT", 59}, "057": {"RI", 59}, "058": {"RM", 91}, "059": {"LT", 11}, "060": {"FR", 38},
	"061": {"CE", 22}, "062": {"BN", 8}, "063": {"NA", 49}, "064": {"AV", 8}, "065": {"SA", 116},
	"066": {"AQ", 49}, "067": {"TE", 41}, "068": {"PE", 28}, "069": {"CH", 22}, "070": {"CB", 6},
	"071": {"FG", 24}, "072": {"BA", 6}, "073": {"TA", 27}, "074": {"BR", 1}, "075": {"LE", 35},
	"076": {"PZ", 63}, "077": {"MT", 14}, "078": {"CS", 45}, "079": {"CZ", 23}, "080": {"RC", 63},
	"081": {"TP", 21}, "082": {"PA", 53}, "083": {"ME", 48}, "084": {"AG", 1}, "085": {"CL", 4},
	"086": {"EN", 9}, "087": {"CT", 15}, "088": {"RG", 9}, "089": {"SR", 17}, "090": {"SS", 64},
	"091": {"NU", 51}, "092": {"CA", 9}, "093": {"PN", 33}, "094": {"IS", 23}, "095": {"OR", 38},
	"096": {"BI", 4}, "097": {"LC", 42}, "098": {"LO", 31}, "099": {"RN", 14}, "100": {"PO", 5},
	"101": {"KR", 10}, "102": {"VV", 47}, "103": {"VB", 72}, "108": {"MB", 33}, "109": {"FM", 6},
	"110": {"BT", 2}, "111": {"SU", 9},
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
